import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

try:  # keep tests off the other core; torch is imported only if installed (it is, in the project venv)
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass
