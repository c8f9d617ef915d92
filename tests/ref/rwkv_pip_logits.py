"""rwkv_pip_logits.py MODEL_NO_EXT PROMPT LOGITS: run a .pth in the `rwkv` pip package
(RWKV_V7_ON=1, strategy "cpu fp32") on PROMPT, tokenized by the package's own tokenizer,
and compare the logits after the prompt with LOGITS (rwkv-generate --logits-out).

torch 1.13 (Debian's) lacks torch.load(mmap=True), which rwkv >= 0.8.28 passes, so the
keyword is dropped by a shim there; nothing else is changed.  torch >= 2.1 runs unshimmed."""
import inspect, os, sys
import numpy as np
import torch

os.environ["RWKV_V7_ON"] = "1"
if "mmap" not in inspect.signature(torch.load).parameters:
    _load = torch.load
    torch.load = lambda *a, mmap=None, **k: _load(*a, **k)
    print("torch", torch.__version__, "has no mmap=: shimmed")
import rwkv  # noqa: E402
from rwkv.model import RWKV  # noqa: E402
from rwkv.rwkv_tokenizer import TRIE_TOKENIZER  # noqa: E402

tok = TRIE_TOKENIZER(os.path.join(os.path.dirname(rwkv.__file__), "rwkv_vocab_v20230424.txt"))
ids = tok.encode(sys.argv[2])
m = RWKV(model=sys.argv[1], strategy="cpu fp32")
out, _ = m.forward(ids, None)
c = torch.from_numpy(np.fromfile(sys.argv[3], dtype=np.float32))
diff = (out.float() - c).abs().max().item()
scale = out.abs().max().item()
same_top = int(out.argmax()) == int(c.argmax())
print(f"rwkv pip (torch {torch.__version__}) vs rwkv-generate, {len(ids)} prompt tokens: "
      f"max |diff| {diff:.3g}, max |logit| {scale:.3g}, same argmax {same_top}")
sys.exit(0 if diff <= 1e-4 * scale and same_top else 1)
