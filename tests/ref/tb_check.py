"""Check rwkv-train's TensorBoard event files against its metrics.jsonl, reading
them with the real tensorboard package (EventAccumulator, which checks both
CRCs of every record and merges a directory's files in name order, dropping
the steps a later file redoes, as TensorBoard shows them).

Usage: tb_check.py TBDIR METRICS.jsonl [FIRST_STEP LAST_STEP]
Exit 0 when, for each of loss, lr, grad_norm, tokens_per_s, the steps are
those of METRICS (or FIRST..LAST only, when given) in order, each value is the
record's value as a float32 (null: NaN), and each wall_time is the record's
time (within its millisecond rounding)."""
import json
import math
import struct
import sys

from tensorboard.backend.event_processing import event_accumulator as ea

TAGS = ("loss", "lr", "grad_norm", "tokens_per_s")


def f32(v):
    return float("nan") if v is None else struct.unpack("<f", struct.pack("<f", v))[0]


def same(a, b):
    return (math.isnan(a) and math.isnan(b)) or a == b


def main():
    tbdir, metrics = sys.argv[1], sys.argv[2]
    recs = [json.loads(line) for line in open(metrics)]
    if len(sys.argv) > 3:
        lo, hi = int(sys.argv[3]), int(sys.argv[4])
        recs = [r for r in recs if lo <= r["step"] <= hi]
    acc = ea.EventAccumulator(tbdir, size_guidance={ea.SCALARS: 0})
    acc.Reload()
    have = set(acc.Tags()["scalars"])
    if have != set(TAGS):
        sys.exit("tags %s, want %s" % (sorted(have), sorted(TAGS)))
    bad = 0
    for tag in TAGS:
        ev = acc.Scalars(tag)
        if [e.step for e in ev] != [r["step"] for r in recs]:
            sys.exit("%s: steps %s..%s (%d), metrics.jsonl %s..%s (%d)" % (
                tag, ev[0].step if ev else None, ev[-1].step if ev else None, len(ev),
                recs[0]["step"] if recs else None, recs[-1]["step"] if recs else None, len(recs)))
        for e, r in zip(ev, recs):
            if not same(e.value, f32(r[tag])) or abs(e.wall_time - r["time"]) > 0.0011:
                bad += 1
                if bad <= 5:
                    print("%s step %d: event %r at %.6f, metrics.jsonl %r at %.3f" % (tag, e.step, e.value, e.wall_time,
                                                                                     r[tag], r["time"]))
    nan = sum(1 for r in recs if r["grad_norm"] is None)
    print("%d steps x %d tags compared (%d null grad_norm); %d differ" % (len(recs), len(TAGS), nan, bad))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
