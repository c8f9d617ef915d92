/* tokenizer.c: greedy longest-match encoder on a double-array trie (see tokenizer.h). */
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

/* One trie node.  Child c of a node lives at slot base + c and carries label
 * c + 1 (0 = free slot).  Every parent gets a distinct base, so a matching
 * label proves the slot belongs to this parent: no parent index is needed,
 * and a node fits in 8 bytes.  Leaves have base 0, which no parent uses. */
typedef struct {
    uint32_t base;
    uint16_t tok;     /* token ending here, 0 if none */
    uint16_t label;
} Node;

/* The encoder reads each node as one 32-bit word: label (c + 1, 0 = free) in
 * bits 0-8, "a token ends here" in bit 9, base in bits 10-31.  The token ids
 * sit in a separate array that is read once per emitted token, which keeps the
 * walked array small (about 0.5 MB for the World vocabulary, so it stays in L2).
 * The first two levels are one dense table holding the depth-2 node words. */
#define W_LABEL(w) ((w) & 0x1FFu)
#define W_END(w) ((w) >> 9 & 1u)
#define W_BASE(w) ((w) >> 10)
#define W_MAX_BASE ((1u << 22) - 1)

struct Tokenizer {
    uint32_t *nodes;         /* packed node words, indexed by slot */
    uint32_t *first2;        /* word of the node for the 2-byte prefix (b0 << 8 | b1), 0 if none */
    uint16_t *tok;           /* token id by slot; then n_slots + (b0 << 8 | b1) for depth 2,
                              * then n_slots + 65536 + b0 for single bytes */
    size_t n_slots;
    uint32_t single[256];    /* token of each single byte */
};

/* Build-time trie node; siblings form a linked list. */
typedef struct {
    uint32_t first_child, next_sibling, last_child;
    uint16_t tok;
    uint8_t label;
} BNode;

void tokenizer_free(Tokenizer *t)
{
    if (!t) return;
    free(t->nodes);
    free(t->first2);
    free(t->tok);
    free(t);
}

Tokenizer *tokenizer_new(const Vocab *v, Error *e)
{
    Tokenizer *t = calloc(1, sizeof *t);
    uint32_t *order = calloc(256 + 65536, sizeof *order);   /* dense child index of levels 0 and 1 */
    size_t total = 1;
    for (uint32_t id = 1; id <= v->n; id++) total += vocab_token_len(v, id);
    BNode *bn = calloc(total, sizeof *bn);
    uint32_t *map = malloc(total * sizeof *map);     /* build node -> slot */
    uint32_t *queue = malloc(total * sizeof *queue);
    size_t cap = 2 * total + 1024;
    Node *nodes = calloc(cap, sizeof *nodes);
    uint8_t *base_used = calloc(cap, 1);
    if (!t || !order || !bn || !map || !queue || !nodes || !base_used) { fail(e, "out of memory"); goto bad; }

    /* 1. a plain trie, tokens in file order.  Children of the first two
     * levels are found through dense tables; deeper nodes have few children,
     * so a scan of the sibling list is enough. */
    size_t nb = 1;
    for (uint32_t id = 1; id <= v->n; id++) {
        uint32_t cur = 0;
        const uint8_t *s = vocab_token(v, id);
        size_t len = vocab_token_len(v, id);
        for (size_t k = 0; k < len; k++) {
            uint32_t *dense = k == 0 ? &order[s[0]] : k == 1 ? &order[256 + ((size_t)s[0] << 8 | s[1])] : NULL;
            uint32_t child = 0;
            if (dense) child = *dense;
            else for (child = bn[cur].first_child; child && bn[child].label != s[k]; child = bn[child].next_sibling) {}
            if (child) { cur = child; continue; }
            uint32_t nn = (uint32_t)nb++;
            bn[nn].label = s[k];
            if (bn[cur].last_child) bn[bn[cur].last_child].next_sibling = nn; else bn[cur].first_child = nn;
            bn[cur].last_child = nn;
            if (dense) *dense = nn;
            cur = nn;
        }
        bn[cur].tok = (uint16_t)id;   /* vocab_parse guarantees distinct byte strings */
    }

    /* 2. place it into the double array.  Sibling groups can go in any order
     * (a group only needs free slots base + label); the largest go first while
     * the array is empty, and the many small ones then fill the holes. */
    {
        size_t groups = 0;
        uint32_t count_of[257] = {0}, start_of[258] = {0};
        for (size_t b = 0; b < nb; b++) {
            unsigned k = 0;
            for (uint32_t c = bn[b].first_child; c; c = bn[c].next_sibling) k++;
            bn[b].last_child = k;   /* reused: number of children */
            if (k) { count_of[k]++; groups++; }
        }
        for (int k = 256; k >= 1; k--) start_of[k - 1] = start_of[k] + count_of[k];
        /* start_of[k-1]..: groups with k children, largest first */
        uint32_t fill[257];
        for (int k = 1; k <= 256; k++) fill[k] = start_of[k];
        for (size_t b = 0; b < nb; b++)
            if (bn[b].last_child) queue[fill[bn[b].last_child]++] = (uint32_t)b;
        (void)groups;
        /* doubly linked list of free slots (0 = none; slot 0 is the root) */
        uint32_t *next_free = malloc(cap * sizeof *next_free), *prev_free = malloc(cap * sizeof *prev_free);
        uint16_t *fails = calloc(cap, sizeof *fails);
        if (!next_free || !prev_free || !fails) {
            free(next_free); free(prev_free); free(fails);
            fail(e, "out of memory");
            goto bad;
        }
        for (size_t i = 1; i < cap; i++) {
            next_free[i] = i + 1 < cap ? (uint32_t)(i + 1) : 0;
            prev_free[i] = (uint32_t)(i - 1);
        }
        uint32_t head = 1;
#define UNLINK(x) do { uint32_t x_ = (x); \
            if (prev_free[x_]) next_free[prev_free[x_]] = next_free[x_]; else head = next_free[x_]; \
            if (next_free[x_]) prev_free[next_free[x_]] = prev_free[x_]; } while (0)
        uint32_t *base_of = map;   /* base chosen for each build node (0 = leaf) */
        memset(base_of, 0, nb * sizeof *base_of);
        int placed_all = 1;
        for (size_t g = 0; g < groups && placed_all; g++) {
            uint32_t b = queue[g], c0 = bn[b].first_child;
            size_t base = 0;
            uint32_t pos = head;
            for (;;) {
                if (!pos) { placed_all = 0; break; }
                uint32_t nx = next_free[pos];
                if (pos > bn[c0].label) {
                    base = pos - bn[c0].label;
                    int ok = !base_used[base] && base + 256 < cap;
                    for (uint32_t c = bn[c0].next_sibling; c && ok; c = bn[c].next_sibling)
                        ok = !nodes[base + bn[c].label].label;
                    if (ok) break;
                    /* a slot that keeps failing as a start rarely helps; stop trying it
                     * (it stays free and can still take a later sibling) */
                    if (++fails[pos] > 4) UNLINK(pos);
                }
                pos = nx;
            }
            if (!placed_all) break;
            base_used[base] = 1;
            base_of[b] = (uint32_t)base;
            for (uint32_t c = c0; c; c = bn[c].next_sibling) {
                uint32_t s2 = (uint32_t)base + bn[c].label;
                nodes[s2].label = (uint16_t)(bn[c].label + 1);
                if (fails[s2] <= 4) UNLINK(s2);
            }
        }
#undef UNLINK
        free(prev_free);
        if (!placed_all) { free(next_free); free(fails); fail(e, "tokenizer: trie does not fit its array"); goto bad; }
        free(next_free);
        free(fails);
        /* slots follow from the parents' bases, top-down */
        size_t qh = 0, qt = 0;
        uint32_t *slot_of = malloc(nb * sizeof *slot_of);
        if (!slot_of) { fail(e, "out of memory"); goto bad; }
        slot_of[0] = 0;
        queue[qt++] = 0;
        while (qh < qt) {
            uint32_t b = queue[qh++];
            nodes[slot_of[b]].base = base_of[b];
            for (uint32_t c = bn[b].first_child; c; c = bn[c].next_sibling) {
                uint32_t s2 = base_of[b] + bn[c].label;
                nodes[s2].tok = bn[c].tok;
                slot_of[c] = s2;
                queue[qt++] = c;
            }
        }
        free(slot_of);
    }

    /* 3. pack the words; the dense first two levels */
    {
        size_t top = 0;
        for (size_t i = 0; i < cap; i++) if (nodes[i].label) top = i;
        t->n_slots = top + 257;   /* lookups from any node may reach base + 255 */
        if (t->n_slots > W_MAX_BASE) { fail(e, "vocabulary too large for the tokenizer's trie"); goto bad; }
        t->nodes = calloc(t->n_slots, sizeof *t->nodes);
        t->tok = calloc(t->n_slots + 65536 + 256 + 2, sizeof *t->tok);   /* +2: 32-bit gathers read one past */
        t->first2 = calloc(65536, sizeof *t->first2);
        if (!t->nodes || !t->tok || !t->first2) { fail(e, "out of memory"); goto bad; }
        for (size_t i = 0; i < t->n_slots && i < cap; i++) {
            t->nodes[i] = nodes[i].label | (uint32_t)(nodes[i].tok != 0) << 9 | nodes[i].base << 10;
            t->tok[i] = nodes[i].tok;
        }
        for (int b0 = 0; b0 < 256; b0++) {
            uint32_t s1 = nodes[0].base + (uint32_t)b0;
            if (nodes[s1].label != b0 + 1 || !nodes[s1].tok) {
                fail(e, "vocabulary lacks the single byte 0x%02X, so some inputs cannot be encoded", b0);
                goto bad;
            }
            t->single[b0] = nodes[s1].tok;
            t->tok[t->n_slots + 65536 + (size_t)b0] = nodes[s1].tok;
            if (!nodes[s1].base) continue;
            for (int b1 = 0; b1 < 256; b1++) {
                uint32_t s2 = nodes[s1].base + (uint32_t)b1;
                if (nodes[s2].label == b1 + 1) {
                    t->first2[b0 << 8 | b1] = t->nodes[s2];
                    t->tok[t->n_slots + (size_t)(b0 << 8 | b1)] = nodes[s2].tok;
                }
            }
        }
        free(nodes);
        nodes = NULL;
    }
    free(order); free(bn); free(map); free(queue); free(base_used);
    return t;
bad:
    free(order); free(bn); free(map); free(queue); free(base_used); free(nodes);
    tokenizer_free(t);
    return NULL;
}

size_t tokenizer_encode(const Tokenizer *t, const uint8_t *s, size_t n, uint32_t *out)
{
    const uint32_t *nodes = t->nodes, *first2 = t->first2;
    const uint16_t *tok = t->tok;
    const size_t depth2 = t->n_slots, single = t->n_slots + 65536;
    uint32_t *o = out;
    while (n >= 2) {
        uint32_t pair = (uint32_t)s[0] << 8 | s[1];
        uint32_t w = first2[pair];
        /* best match so far, as an index into tok[] (no branch on its kind) */
        size_t best_ref = W_END(w) ? depth2 + pair : single + s[0], best_len = W_END(w) ? 2 : 1;
        for (size_t i = 2; i < n; i++) {
            uint32_t c = s[i];
            size_t slot = W_BASE(w) + c;
            uint32_t x = nodes[slot];
            if (W_LABEL(x) != c + 1) break;
            w = x;
            best_ref = W_END(x) ? slot : best_ref;
            best_len = W_END(x) ? i + 1 : best_len;
        }
        *o++ = tok[best_ref];
        s += best_len;
        n -= best_len;
    }
    if (n) *o++ = t->single[s[0]];
    return (size_t)(o - out);
}

void tokenizer_encode_many(const Tokenizer *t, const uint8_t *base, size_t count, const uint32_t *off,
                           const uint32_t *len, uint32_t *out, const uint32_t *out_off, uint32_t *n_out)
{
    size_t d = 0;
#ifdef __AVX512F__
    /* Sixteen texts at once, one per 32-bit vector lane.  A lone walk is a
     * chain of dependent loads plus a mispredicted loop exit per token; here
     * every round advances all lanes by one step with gathers and masks, so
     * nothing waits on a single load and nothing branches on the data.  A lane
     * whose step fails emits its best match, restarts after it, and takes the
     * next text when its own is done. */
    enum { W = 16 };
    const uint32_t depth2 = (uint32_t)t->n_slots, single = depth2 + 65536;
    uint32_t st_pos[W], st_rem[W], st_w[W], st_i[W], st_blen[W], st_bref[W], st_opos[W], doc[W];
    __mmask16 active = 0;
    /* start lane k on the next text (scalar; once per text) */
#define LANE_START(k) do { \
        while (d < count && !len[d]) n_out[d++] = 0; \
        if (d < count) { \
            const uint8_t *s_ = base + off[d]; \
            uint32_t two_ = len[d] >= 2, pair_ = (uint32_t)s_[0] << 8 | s_[two_]; \
            uint32_t w_ = two_ ? t->first2[pair_] : 0; \
            st_pos[k] = off[d]; st_rem[k] = len[d]; st_w[k] = w_; st_i[k] = 2; \
            st_blen[k] = W_END(w_) ? 2 : 1; st_bref[k] = W_END(w_) ? depth2 + pair_ : single + s_[0]; \
            st_opos[k] = out_off[d]; doc[k] = (uint32_t)d; active |= (__mmask16)(1u << (k)); d++; \
        } else { \
            st_pos[k] = st_rem[k] = st_w[k] = st_blen[k] = st_bref[k] = st_opos[k] = 0; st_i[k] = 2; \
            active &= (__mmask16)~(1u << (k)); \
        } \
    } while (0)
    if (count >= W) {
        for (int k = 0; k < W; k++) LANE_START(k);
        const __m512i one = _mm512_set1_epi32(1), two = _mm512_set1_epi32(2), byte = _mm512_set1_epi32(0xFF);
        const __m512i mask9 = _mm512_set1_epi32(0x1FF), endbit = _mm512_set1_epi32(1 << 9);
        const __m512i v_single = _mm512_set1_epi32((int)single), v_depth2 = _mm512_set1_epi32((int)depth2);
        const __m512i zero = _mm512_setzero_si512();
        /* vector rounds while enough lanes are busy; the rest finish in scalar code */
        while (__builtin_popcount(active) >= W / 2) {
            __m512i pos = _mm512_loadu_si512(st_pos), rem = _mm512_loadu_si512(st_rem);
            __m512i w = _mm512_loadu_si512(st_w), i = _mm512_loadu_si512(st_i);
            __m512i blen = _mm512_loadu_si512(st_blen), bref = _mm512_loadu_si512(st_bref);
            __m512i opos = _mm512_loadu_si512(st_opos);
            __mmask16 done = 0;
            /* win holds the next text bytes of each lane (wn of them), so the
             * text is gathered once per 4 steps rather than every step */
            __m512i win = zero, wn = zero;
            while (!done) {
                __mmask16 in = _mm512_mask_cmplt_epu32_mask(active, i, rem);
                __mmask16 reload = _mm512_mask_cmpeq_epi32_mask(in, wn, zero);
                if (reload) {
                    win = _mm512_mask_i32gather_epi32(win, reload, _mm512_add_epi32(pos, i), base, 1);
                    wn = _mm512_mask_mov_epi32(wn, reload, _mm512_set1_epi32(4));
                }
                __m512i c = _mm512_and_si512(win, byte);
                __m512i slot = _mm512_add_epi32(_mm512_srli_epi32(w, 10), c);
                __m512i x = _mm512_mask_i32gather_epi32(zero, in, slot, t->nodes, 4);
                __mmask16 ok = _mm512_mask_cmpeq_epi32_mask(in, _mm512_and_si512(x, mask9), _mm512_add_epi32(c, one));
                __mmask16 end = _mm512_mask_test_epi32_mask(ok, x, endbit);
                blen = _mm512_mask_add_epi32(blen, end, i, one);
                bref = _mm512_mask_mov_epi32(bref, end, slot);
                w = _mm512_maskz_mov_epi32(ok, x);
                i = _mm512_mask_add_epi32(i, ok, i, one);
                win = _mm512_mask_srli_epi32(win, ok, win, 8);
                wn = _mm512_mask_sub_epi32(wn, ok, wn, one);
                __mmask16 fin = active & ~ok;   /* these lanes' tokens are settled */
                if (!fin) continue;
                /* the match's tok[] index for now; turned into the id at the end */
                _mm512_mask_i32scatter_epi32(out, fin, opos, bref, 4);
                opos = _mm512_mask_add_epi32(opos, fin, opos, one);
                pos = _mm512_mask_add_epi32(pos, fin, pos, blen);
                rem = _mm512_mask_sub_epi32(rem, fin, rem, blen);
                done = _mm512_mask_cmpeq_epi32_mask(fin, rem, zero);
                __mmask16 rs = fin & ~done;
                __mmask16 two_left = _mm512_mask_cmpge_epu32_mask(rs, rem, two);
                __m512i bytes = _mm512_mask_i32gather_epi32(zero, rs, pos, base, 1);
                __m512i b0 = _mm512_and_si512(bytes, byte);
                __m512i pair = _mm512_or_si512(_mm512_slli_epi32(b0, 8), _mm512_and_si512(_mm512_srli_epi32(bytes, 8), byte));
                __m512i w2 = _mm512_mask_i32gather_epi32(zero, two_left, pair, t->first2, 4);
                __mmask16 end2 = _mm512_mask_test_epi32_mask(two_left, w2, endbit);
                blen = _mm512_mask_mov_epi32(blen, rs, one);
                blen = _mm512_mask_mov_epi32(blen, end2, two);
                bref = _mm512_mask_add_epi32(bref, rs, v_single, b0);
                bref = _mm512_mask_add_epi32(bref, end2, v_depth2, pair);
                w = _mm512_mask_mov_epi32(w, rs, w2);
                i = _mm512_mask_mov_epi32(i, rs, two);
                win = _mm512_mask_srli_epi32(win, rs, bytes, 16);   /* bytes 2 and 3 of the new token */
                wn = _mm512_mask_mov_epi32(wn, rs, two);
            }
            _mm512_storeu_si512(st_pos, pos); _mm512_storeu_si512(st_rem, rem);
            _mm512_storeu_si512(st_w, w); _mm512_storeu_si512(st_i, i);
            _mm512_storeu_si512(st_blen, blen); _mm512_storeu_si512(st_bref, bref);
            _mm512_storeu_si512(st_opos, opos);
            for (int k = 0; k < W; k++) {
                if (!(done >> k & 1)) continue;
                uint32_t dk = doc[k], n_ids = st_opos[k] - out_off[dk];
                n_out[dk] = n_ids;
                for (uint32_t *p = out + out_off[dk], *e = p + n_ids; p < e; p++) *p = t->tok[*p];
                LANE_START(k);
            }
        }
        /* lanes still busy: finish from the start of their current token */
        for (int k = 0; k < W; k++) {
            if (!(active >> k & 1)) continue;
            for (uint32_t *p = out + out_off[doc[k]], *e = out + st_opos[k]; p < e; p++) *p = t->tok[*p];
            uint32_t o = st_opos[k];
            o += (uint32_t)tokenizer_encode(t, base + st_pos[k], st_rem[k], out + o);
            n_out[doc[k]] = o - out_off[doc[k]];
        }
    }
#undef LANE_START
#endif
    for (; d < count; d++) n_out[d] = (uint32_t)tokenizer_encode(t, base + off[d], len[d], out + out_off[d]);
}

int tokenizer_decode(const Vocab *v, const uint32_t *ids, size_t n,
                     uint8_t **buf, size_t *len, size_t *cap, size_t *bad_index, Error *e)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t id = ids[i];
        if (id == 0) continue;
        if (id > v->n) {
            if (bad_index) *bad_index = i;
            return fail(e, "token id %u is not in the vocabulary (1..%u, 0 = end of document)", id, v->n);
        }
        size_t l = vocab_token_len(v, id);
        if (*len + l > *cap) {
            size_t nc = *cap ? *cap * 2 : 4096;
            while (nc < *len + l) nc *= 2;
            uint8_t *nb = realloc(*buf, nc);
            if (!nb) return fail(e, "out of memory");
            *buf = nb;
            *cap = nc;
        }
        memcpy(*buf + *len, vocab_token(v, id), l);
        *len += l;
    }
    return 0;
}
