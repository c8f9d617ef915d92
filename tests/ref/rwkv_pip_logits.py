"""rwkv_pip_logits.py MODEL_NO_EXT TOKENS C_LOGITS: run a .pth in the `rwkv` pip package
(RWKV_V7_ON=1, strategy "cpu fp32") and compare its logits with C_LOGITS (pth_logits output).

torch 1.13 (Debian's) lacks torch.load(mmap=True), which rwkv >= 0.8.28 passes, so the
keyword is dropped by a shim here; nothing else is changed."""
import os, sys
import numpy as np
import torch

os.environ["RWKV_V7_ON"] = "1"
if "mmap" not in torch.load.__code__.co_varnames:
    _load = torch.load
    torch.load = lambda *a, mmap=None, **k: _load(*a, **k)
from rwkv.model import RWKV  # noqa: E402

m = RWKV(model=sys.argv[1], strategy="cpu fp32")
toks = [int(x) for x in sys.argv[2].split(",")]
out, _ = m.forward(toks, None, full_output=True)
c = torch.from_numpy(np.fromfile(sys.argv[3], dtype=np.float32).reshape(len(toks), -1))
diff = (out.float() - c).abs().max().item()
scale = out.abs().max().item()
print(f"rwkv pip vs our model: max |diff| {diff:.3g}, max |logit| {scale:.3g}, "
      f"argmax equal {bool((out.argmax(1) == c.argmax(1)).all())}")
sys.exit(0 if diff <= 1e-4 * scale and bool((out.argmax(1) == c.argmax(1)).all()) else 1)
