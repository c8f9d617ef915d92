/* magic.h: magic_prime and my_exit_tokens for RWKV training (RWKV-LM-V7
 * data/make_data.py and src/dataset.py MyDataset.__init__).
 *
 * The trainer visits ctx_len-sized chunks in the order (factor * ii^3) mod p,
 * which is a permutation of [0, p) only when p is a prime with p % 3 == 2;
 * magic_prime is the largest such p that still leaves one token of slack
 * (p <= tokens / ctx_len - 1).  All arithmetic is 64-bit safe.  The one home
 * of these rules: magic-prime computes with them, rwkv-train checks with them. */
#ifndef RWKV7C_MAGIC_H
#define RWKV7C_MAGIC_H
#include <stdint.h>
#include "util.h"

/* Exact primality for every 64-bit n (deterministic Miller-Rabin). */
int is_prime(uint64_t n);

/* The largest prime p with p % 3 == 2 and p <= tokens / ctx_len - 1, as
 * make_data.py computes it.  Fails (clear message) when ctx_len is 0 or the
 * data holds fewer than 3 * ctx_len tokens, as make_data.py then prints none. */
int magic_prime(uint64_t tokens, uint64_t ctx_len, uint64_t *prime, Error *e);

/* my_exit_tokens: training stops after about one pass over the data. */
static inline uint64_t magic_exit_tokens(uint64_t tokens) { return tokens; }

/* The checks the reference trainer makes at start-up (src/dataset.py):
 * is_prime(p), p % 3 == 2 and 0.9 < p / (tokens / ctx_len) <= 1, plus "every
 * window [i*ctx_len, (i+1)*ctx_len + 1) lies inside the data".  The message
 * says what is wrong and which value the data calls for. */
int magic_prime_check(uint64_t prime, uint64_t tokens, uint64_t ctx_len, Error *e);

/* rwkv-train's rule: magic_prime_check, except that the value make_data.py
 * computes for the data is always accepted (on small data it can fail the 0.9
 * ratio: the demo at ctx_len 512 has 113 of 130 chunks). */
int magic_prime_accept(uint64_t prime, uint64_t tokens, uint64_t ctx_len, Error *e);
#endif
