"""Import TensorBoard event files into an offline wandb run with wandb's own
TensorBoard reader (the one behind wandb.init(sync_tensorboard=True), in
wandb-core), while COMMAND writes them: wandb reads only event files created
after its run started.

Usage: wandb_tb_import.py WANDB_DIR TBDIR COMMAND...
Exit 77 when this wandb has no way to watch a directory (the hook used,
Run._tensorboard_callback, is what wandb.tensorboard.patch calls; it is private)."""
import os
import subprocess
import sys

import wandb


def main():
    wdir, tbdir, cmd = sys.argv[1], os.path.abspath(sys.argv[2]), sys.argv[3:]
    os.makedirs(wdir, exist_ok=True)
    os.makedirs(tbdir, exist_ok=True)
    run = wandb.init(project="rwkv7c-tb-import", dir=wdir, mode="offline")
    watch = getattr(run, "_tensorboard_callback", None)
    if watch is None:
        run.finish()
        print("this wandb has no Run._tensorboard_callback")
        return 77
    watch(tbdir, save=False, root_logdir=tbdir)
    rc = subprocess.run(cmd).returncode
    run.finish()
    return rc


if __name__ == "__main__":
    sys.exit(main())
