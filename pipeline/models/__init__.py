"""The networks, one file per model (definitions only; weights are resolved elsewhere), and the two
rewrites that make them faster at inference: `folding.py` (batch norms into convolutions) and `int8.py`.

Both are facenet-pytorch's architectures (MIT, Copyright (c) 2019 Timothy Esler), re-declared here so
that running them needs only torch: importing facenet-pytorch imports torchvision, whose import
(with torch._dynamo) cost 2-4 s of the app's cold start. The state-dict keys are facenet-pytorch's,
so its weight files load unchanged; tests/test_models.py checks both against facenet-pytorch itself.
"""
