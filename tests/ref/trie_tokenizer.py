#!/usr/bin/env python3
"""Pure-Python peer of the reference RWKV World tokenizer.

Reimplements TRIE_TOKENIZER from RWKV-LM-V7 data/tokenizer/rwkv_tokenizer.py
(greedy longest-prefix match over a byte trie) so
that tests and benchmarks can compare rwkv-tokenize against it.  Behaviour
follows the reference: vocabulary lines are "<id> <python literal> <len>", str
literals are UTF-8 encoded, bytes literals are raw, lengths are asserted;
decode() returns U+FFFD for byte sequences that are not valid UTF-8.

Usage as a tool (for benchmarks and ad-hoc checks):
  trie_tokenizer.py VOCAB encode   < text      -> ids, space separated
  trie_tokenizer.py VOCAB jsonl    < file.jsonl -> one line of ids per doc, 0 appended
  trie_tokenizer.py VOCAB decode   < ids        -> text
"""
import ast
import json
import sys


class TRIE:
    __slots__ = ("ch", "to", "values", "front")

    def __init__(self, front=None, ch=None):
        self.ch = ch
        self.to = [None] * 256
        self.values = set()
        self.front = front

    def add(self, key, idx=0, val=None):
        node = self
        while idx < len(key):
            ch = key[idx]
            if node.to[ch] is None:
                node.to[ch] = TRIE(front=node, ch=ch)
            node = node.to[ch]
            idx += 1
        node.values.add(key if val is None else val)
        return node

    def find_longest(self, key, idx=0):
        node = self
        ch = key[idx]
        ret = None
        while node.to[ch] is not None:
            node = node.to[ch]
            idx += 1
            if node.values:
                ret = idx, node, node.values
            if idx == len(key):
                break
            ch = key[idx]
        return ret


class TRIE_TOKENIZER:
    def __init__(self, file_name):
        self.idx2token = {}
        with open(file_name, "r", encoding="utf-8") as f:
            lines = f.readlines()
        for line in lines:
            line = line.rstrip("\n").rstrip("\r")
            first = line.index(" ")
            last = line.rindex(" ")
            idx = int(line[:first])
            x = ast.literal_eval(line[first:last].strip())
            x = x.encode("utf-8") if isinstance(x, str) else x
            assert isinstance(x, bytes)
            assert len(x) == int(line[last:])
            self.idx2token[idx] = x
        self.token2idx = {v: int(k) for k, v in self.idx2token.items()}
        self.root = TRIE()
        for t, i in self.token2idx.items():
            self.root.add(t, val=(t, i))

    def encodeBytes(self, src):
        idx = 0
        tokens = []
        while idx < len(src):
            start = idx
            idx, _, values = self.root.find_longest(src, idx)
            assert idx != start
            _, token = next(iter(values))
            tokens.append(token)
        return tokens

    def decodeBytes(self, tokens):
        return b"".join(self.idx2token[i] for i in tokens)

    def encode(self, src):
        return self.encodeBytes(src.encode("utf-8"))

    def decode(self, tokens):
        try:
            return self.decodeBytes(tokens).decode("utf-8")
        except UnicodeDecodeError:
            return "\ufffd"  # bad utf-8, as the reference does


def main(argv):
    if len(argv) != 3 or argv[2] not in ("encode", "jsonl", "decode"):
        sys.stderr.write(__doc__)
        return 2
    tok = TRIE_TOKENIZER(argv[1])
    out = sys.stdout
    if argv[2] == "encode":
        data = sys.stdin.buffer.read()
        out.write(" ".join(map(str, tok.encodeBytes(data))) + "\n")
    elif argv[2] == "jsonl":
        for line in sys.stdin.buffer:
            line = line.decode("utf-8").strip()
            if not line:
                continue
            ids = tok.encode(json.loads(line)["text"]) + [0]
            out.write(" ".join(map(str, ids)) + "\n")
    else:
        ids = [int(w) for w in sys.stdin.read().split()]
        sys.stdout.buffer.write(tok.decodeBytes([i for i in ids if i != 0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
