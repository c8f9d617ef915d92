/* tokenizer.c: greedy longest-match encoder on a double-array trie (see tokenizer.h). */
#include "tokenizer.h"
#include "growbuf.h"

#include <stdlib.h>
#include <string.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

/* The walk over many texts at once with AVX-512 gathers, or one text at a time, chosen once per
 * process: RWKV7C_TOKENIZER_WALK=scalar|vector overrides; by default the vector walk wherever
 * this build has it and the CPU runs it.  Measured gains of the vector walk: 1.03-1.10x on AMD
 * Zen 4 (issue 13), more on Intel (bench/b_tokenize.sh prints both); the ids never differ. */
static int vector_walk(void)
{
#ifdef __AVX512F__
    static int chosen = -1;
    if (chosen < 0) {
        const char *env = getenv("RWKV7C_TOKENIZER_WALK");
        chosen = env && !strcmp(env, "scalar") ? 0 : __builtin_cpu_supports("avx512f") ? 1 : 0;
    }
    return chosen;
#else
    return 0;
#endif
}

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
    uint8_t *len_of;         /* byte length of each token id */
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
    free(t->len_of);
    free(t);
}

/* Scratch of tokenizer_new, shared by its three phases. */
typedef struct {
    BNode    *bn;          /* the plain trie; bn[0] is the root */
    size_t    nb;
    uint32_t *order;       /* dense child index of levels 0 and 1 */
    uint32_t *queue;       /* sibling groups in placement order, then a BFS queue */
    uint32_t *base_of;     /* base chosen for each build node (0 = leaf) */
    Node     *nodes;       /* the double array */
    uint8_t  *base_used;
    size_t    cap;
} TrieBuild;

/* 1. a plain trie, tokens in file order.  Children of the first two levels are
 * found through dense tables; deeper nodes have few children, so a scan of the
 * sibling list is enough. */
static void build_trie(TrieBuild *b, const Vocab *v)
{
    BNode *bn = b->bn;
    size_t nb = 1;
    for (uint32_t id = 1; id <= v->n; id++) {
        uint32_t cur = 0;
        const uint8_t *s = vocab_token(v, id);
        size_t len = vocab_token_len(v, id);
        for (size_t k = 0; k < len; k++) {
            uint32_t *dense = k == 0 ? &b->order[s[0]] : k == 1 ? &b->order[256 + ((size_t)s[0] << 8 | s[1])] : NULL;
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
    b->nb = nb;
}

/* Queue the sibling groups largest first; returns their number. */
static size_t order_groups(TrieBuild *b)
{
    BNode *bn = b->bn;
    size_t groups = 0;
    uint32_t count_of[257] = {0}, start_of[258] = {0};
    for (size_t n = 0; n < b->nb; n++) {
        unsigned k = 0;
        for (uint32_t c = bn[n].first_child; c; c = bn[c].next_sibling) k++;
        bn[n].last_child = k;   /* reused: number of children */
        if (k) { count_of[k]++; groups++; }
    }
    for (int k = 256; k >= 1; k--) start_of[k - 1] = start_of[k] + count_of[k];
    /* start_of[k-1]..: groups with k children, largest first */
    uint32_t fill[257];
    for (int k = 1; k <= 256; k++) fill[k] = start_of[k];
    for (size_t n = 0; n < b->nb; n++)
        if (bn[n].last_child) b->queue[fill[bn[n].last_child]++] = (uint32_t)n;
    return groups;
}

/* 2. place the trie into the double array.  Sibling groups can go in any order
 * (a group only needs free slots base + label); the largest go first while the
 * array is empty, and the many small ones then fill the holes. */
static int place_trie(TrieBuild *b, Error *e)
{
    BNode *bn = b->bn;
    Node *nodes = b->nodes;
    size_t cap = b->cap, groups = order_groups(b);
    /* doubly linked list of free slots (0 = none; slot 0 is the root) */
    uint32_t *next_free = malloc(cap * sizeof *next_free), *prev_free = malloc(cap * sizeof *prev_free);
    uint16_t *fails = calloc(cap, sizeof *fails);
    int rc = 0;
    if (!next_free || !prev_free || !fails) { rc = fail(e, "out of memory"); goto done; }
    for (size_t i = 1; i < cap; i++) {
        next_free[i] = i + 1 < cap ? (uint32_t)(i + 1) : 0;
        prev_free[i] = (uint32_t)(i - 1);
    }
    uint32_t head = 1;
#define UNLINK(x) do { uint32_t x_ = (x); \
        if (prev_free[x_]) next_free[prev_free[x_]] = next_free[x_]; else head = next_free[x_]; \
        if (next_free[x_]) prev_free[next_free[x_]] = prev_free[x_]; } while (0)
    memset(b->base_of, 0, b->nb * sizeof *b->base_of);
    for (size_t g = 0; g < groups; g++) {
        uint32_t parent = b->queue[g], c0 = bn[parent].first_child;
        size_t base = 0;
        uint32_t pos = head;
        for (;;) {
            if (!pos) { rc = fail(e, "tokenizer: trie does not fit its array"); goto done; }
            uint32_t nx = next_free[pos];
            if (pos > bn[c0].label) {
                base = pos - bn[c0].label;
                int ok = !b->base_used[base] && base + 256 < cap;
                for (uint32_t c = bn[c0].next_sibling; c && ok; c = bn[c].next_sibling)
                    ok = !nodes[base + bn[c].label].label;
                if (ok) break;
                /* a slot that keeps failing as a start rarely helps; stop trying it
                 * (it stays free and can still take a later sibling) */
                if (++fails[pos] > 4) UNLINK(pos);
            }
            pos = nx;
        }
        b->base_used[base] = 1;
        b->base_of[parent] = (uint32_t)base;
        for (uint32_t c = c0; c; c = bn[c].next_sibling) {
            uint32_t s2 = (uint32_t)base + bn[c].label;
            nodes[s2].label = (uint16_t)(bn[c].label + 1);
            if (fails[s2] <= 4) UNLINK(s2);
        }
    }
#undef UNLINK
    /* slots follow from the parents' bases, top-down */
    uint32_t *slot_of = malloc(b->nb * sizeof *slot_of);
    if (!slot_of) { rc = fail(e, "out of memory"); goto done; }
    size_t qh = 0, qt = 0;
    slot_of[0] = 0;
    b->queue[qt++] = 0;
    while (qh < qt) {
        uint32_t n = b->queue[qh++];
        nodes[slot_of[n]].base = b->base_of[n];
        for (uint32_t c = bn[n].first_child; c; c = bn[c].next_sibling) {
            uint32_t s2 = b->base_of[n] + bn[c].label;
            nodes[s2].tok = bn[c].tok;
            slot_of[c] = s2;
            b->queue[qt++] = c;
        }
    }
    free(slot_of);
done:
    free(next_free);
    free(prev_free);
    free(fails);
    return rc;
}

/* 3. pack the node words and the dense first two levels into t. */
static int pack_trie(Tokenizer *t, const Vocab *v, const Node *nodes, size_t cap, Error *e)
{
    size_t top = 0;
    for (size_t i = 0; i < cap; i++) if (nodes[i].label) top = i;
    t->n_slots = top + 257;   /* lookups from any node may reach base + 255 */
    if (t->n_slots > W_MAX_BASE) return fail(e, "vocabulary too large for the tokenizer's trie");
    t->nodes = calloc(t->n_slots, sizeof *t->nodes);
    t->tok = calloc(t->n_slots + 65536 + 256 + 2, sizeof *t->tok);   /* +2: 32-bit gathers read one past */
    t->first2 = calloc(65536, sizeof *t->first2);
    t->len_of = calloc((size_t)v->n + 1, 1);
    if (!t->nodes || !t->tok || !t->first2 || !t->len_of) return fail(e, "out of memory");
    for (uint32_t id = 1; id <= v->n; id++) t->len_of[id] = (uint8_t)vocab_token_len(v, id);
    for (size_t i = 0; i < t->n_slots && i < cap; i++) {
        t->nodes[i] = nodes[i].label | (uint32_t)(nodes[i].tok != 0) << 9 | nodes[i].base << 10;
        t->tok[i] = nodes[i].tok;
    }
    for (int b0 = 0; b0 < 256; b0++) {
        uint32_t s1 = nodes[0].base + (uint32_t)b0;
        if (nodes[s1].label != b0 + 1 || !nodes[s1].tok)
            return fail(e, "vocabulary lacks the single byte 0x%02X, so some inputs cannot be encoded", b0);
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
    return 0;
}

Tokenizer *tokenizer_new(const Vocab *v, Error *e)
{
    Tokenizer *t = calloc(1, sizeof *t);
    size_t total = 1;
    for (uint32_t id = 1; id <= v->n; id++) total += vocab_token_len(v, id);
    TrieBuild b = { .cap = 2 * total + 1024 };
    b.order = calloc(256 + 65536, sizeof *b.order);
    b.bn = calloc(total, sizeof *b.bn);
    b.base_of = malloc(total * sizeof *b.base_of);
    b.queue = malloc(total * sizeof *b.queue);
    b.nodes = calloc(b.cap, sizeof *b.nodes);
    b.base_used = calloc(b.cap, 1);
    int rc = 0;
    if (!t || !b.order || !b.bn || !b.base_of || !b.queue || !b.nodes || !b.base_used) rc = fail(e, "out of memory");
    if (!rc) build_trie(&b, v);
    if (!rc) rc = place_trie(&b, e);
    if (!rc) rc = pack_trie(t, v, b.nodes, b.cap, e);
    free(b.order); free(b.bn); free(b.base_of); free(b.queue); free(b.nodes); free(b.base_used);
    if (rc) { tokenizer_free(t); return NULL; }
    return t;
}

/* Greedy tokens of s[0..n) from the start until at least `stop` bytes are
 * covered (the last token may run past stop; matches may use all n bytes).
 * *covered (may be NULL) gets the bytes the tokens cover.  Returns their number. */
static size_t encode_until(const Tokenizer *t, const uint8_t *s, size_t n, size_t stop, uint32_t *out, size_t *covered)
{
    const uint32_t *nodes = t->nodes, *first2 = t->first2;
    const uint16_t *tok = t->tok;
    const size_t depth2 = t->n_slots, single = t->n_slots + 65536;
    const uint8_t *start = s, *stop_at = s + stop;
    uint32_t *o = out;
    while (s < stop_at) {
        size_t left = n - (size_t)(s - start);
        if (left < 2) { *o++ = t->single[s[0]]; s++; break; }
        uint32_t pair = (uint32_t)s[0] << 8 | s[1];
        uint32_t w = first2[pair];
        /* best match so far, as an index into tok[] (no branch on its kind) */
        size_t best_ref = W_END(w) ? depth2 + pair : single + s[0], best_len = W_END(w) ? 2 : 1;
        for (size_t i = 2; i < left; i++) {
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
    }
    if (covered) *covered = (size_t)(s - start);
    return (size_t)(o - out);
}

#ifdef __AVX512F__
/* The state of sixteen walks, one per 32-bit lane (see walk_pieces). */
typedef struct {
    __m512i pos, rem, left, w, i, blen, bref, opos, win, wn;
    __mmask16 active, done;
} Lanes;

/* One step of every active lane: follow the next byte, or emit the best match
 * and restart after it.  Lanes whose piece is complete are added to g->done. */
static inline __attribute__((always_inline)) void lanes_step(Lanes *g, const Tokenizer *t, const uint8_t *base,
                                                             uint32_t *out)
{
    const __m512i one = _mm512_set1_epi32(1), two = _mm512_set1_epi32(2), byte = _mm512_set1_epi32(0xFF);
    const __m512i mask9 = _mm512_set1_epi32(0x1FF), endbit = _mm512_set1_epi32(1 << 9);
    const __m512i zero = _mm512_setzero_si512();
    const __m512i v_depth2 = _mm512_set1_epi32((int)t->n_slots), v_single = _mm512_set1_epi32((int)t->n_slots + 65536);
    __mmask16 in = _mm512_mask_cmplt_epu32_mask(g->active, g->i, g->rem);
    /* win holds the next text bytes of each lane (wn of them), so the text is
     * gathered once per 4 steps rather than every step */
    __mmask16 reload = _mm512_mask_cmpeq_epi32_mask(in, g->wn, zero);
    if (reload) {
        g->win = _mm512_mask_i32gather_epi32(g->win, reload, _mm512_add_epi32(g->pos, g->i), base, 1);
        g->wn = _mm512_mask_mov_epi32(g->wn, reload, _mm512_set1_epi32(4));
    }
    __m512i c = _mm512_and_si512(g->win, byte);
    __m512i slot = _mm512_add_epi32(_mm512_srli_epi32(g->w, 10), c);
    __m512i x = _mm512_mask_i32gather_epi32(zero, in, slot, t->nodes, 4);
    __mmask16 ok = _mm512_mask_cmpeq_epi32_mask(in, _mm512_and_si512(x, mask9), _mm512_add_epi32(c, one));
    __mmask16 end = _mm512_mask_test_epi32_mask(ok, x, endbit);
    g->blen = _mm512_mask_add_epi32(g->blen, end, g->i, one);
    g->bref = _mm512_mask_mov_epi32(g->bref, end, slot);
    g->w = _mm512_maskz_mov_epi32(ok, x);
    g->i = _mm512_mask_add_epi32(g->i, ok, g->i, one);
    g->win = _mm512_mask_srli_epi32(g->win, ok, g->win, 8);
    g->wn = _mm512_mask_sub_epi32(g->wn, ok, g->wn, one);
    __mmask16 fin = g->active & ~ok;   /* these lanes' tokens are settled */
    if (!fin) return;
    /* the match's tok[] index for now; turned into the id when the piece is done */
    _mm512_mask_i32scatter_epi32(out, fin, g->opos, g->bref, 4);
    g->opos = _mm512_mask_add_epi32(g->opos, fin, g->opos, one);
    g->pos = _mm512_mask_add_epi32(g->pos, fin, g->pos, g->blen);
    g->rem = _mm512_mask_sub_epi32(g->rem, fin, g->rem, g->blen);
    g->left = _mm512_mask_sub_epi32(g->left, fin, g->left, g->blen);
    __mmask16 done = _mm512_mask_cmple_epi32_mask(fin, g->left, zero);   /* signed: the last token may overshoot */
    g->done |= done;
    g->active &= ~done;
    __mmask16 rs = fin & ~done;
    __mmask16 two_left = _mm512_mask_cmpge_epu32_mask(rs, g->rem, two);
    __m512i bytes = _mm512_mask_i32gather_epi32(zero, rs, g->pos, base, 1);
    __m512i b0 = _mm512_and_si512(bytes, byte);
    __m512i pair = _mm512_or_si512(_mm512_slli_epi32(b0, 8), _mm512_and_si512(_mm512_srli_epi32(bytes, 8), byte));
    __m512i w2 = _mm512_mask_i32gather_epi32(zero, two_left, pair, t->first2, 4);
    __mmask16 end2 = _mm512_mask_test_epi32_mask(two_left, w2, endbit);
    g->blen = _mm512_mask_mov_epi32(g->blen, rs, one);
    g->blen = _mm512_mask_mov_epi32(g->blen, end2, two);
    g->bref = _mm512_mask_add_epi32(g->bref, rs, v_single, b0);
    g->bref = _mm512_mask_add_epi32(g->bref, end2, v_depth2, pair);
    g->w = _mm512_mask_mov_epi32(g->w, rs, w2);
    g->i = _mm512_mask_mov_epi32(g->i, rs, two);
    g->win = _mm512_mask_srli_epi32(g->win, rs, bytes, 16);   /* bytes 2 and 3 of the new token */
    g->wn = _mm512_mask_mov_epi32(g->wn, rs, two);
}
#endif

/* Walk count pieces of one buffer: piece d starts at base + off[d], its
 * matches may read len[d] bytes, and it emits greedy tokens until stop[d]
 * (1 <= stop[d] <= len[d] < 2^31; 0 = empty piece) bytes are covered.  Ids go
 * to out[out_off[d] ...] (room for stop[d] ids), their number to n_out[d].  At
 * least 4 bytes after base + off[d] + len[d] must be readable. */
static void walk_pieces(const Tokenizer *t, const uint8_t *base, size_t count, const uint32_t *off,
                        const uint32_t *len, const uint32_t *stop, uint32_t *out, const uint32_t *out_off,
                        uint32_t *n_out)
{
    size_t d = 0;
#ifdef __AVX512F__
    /* Two groups of sixteen pieces at once, one piece per 32-bit vector lane.
     * A lone walk is a chain of dependent loads plus a mispredicted loop exit
     * per token; here every step advances all lanes with gathers and masks, so
     * nothing branches on the data, and the two groups' independent chains of
     * loads overlap.  A lane whose piece is done takes the next piece; when
     * too few lanes are left busy, they finish in scalar code. */
    enum { W = 16, G = 1 };   /* two groups measured slower: gathers and scatters are the limit */
    const uint32_t depth2 = (uint32_t)t->n_slots, single = depth2 + 65536;
    uint32_t st[G][10][W], doc[G][W];   /* lanes spilled to memory between steps */
    enum { S_POS, S_REM, S_LEFT, S_W, S_I, S_BLEN, S_BREF, S_OPOS, S_WIN, S_WN };
    __mmask16 active[G] = { 0 };
    /* start lane k of group g on the next piece (scalar; once per piece) */
#define LANE_START(g, k) do { \
        while (d < count && !stop[d]) n_out[d++] = 0; \
        if (d < count) { \
            const uint8_t *s_ = base + off[d]; \
            uint32_t two_ = len[d] >= 2, pair_ = (uint32_t)s_[0] << 8 | s_[two_]; \
            uint32_t w_ = two_ ? t->first2[pair_] : 0; \
            st[g][S_POS][k] = off[d]; st[g][S_REM][k] = len[d]; st[g][S_LEFT][k] = stop[d]; \
            st[g][S_W][k] = w_; st[g][S_I][k] = 2; \
            st[g][S_BLEN][k] = W_END(w_) ? 2 : 1; st[g][S_BREF][k] = W_END(w_) ? depth2 + pair_ : single + s_[0]; \
            st[g][S_OPOS][k] = out_off[d]; st[g][S_WIN][k] = 0; st[g][S_WN][k] = 0; \
            doc[g][k] = (uint32_t)d; active[g] |= (__mmask16)(1u << (k)); d++; \
        } else { \
            for (int f_ = 0; f_ < 10; f_++) st[g][f_][k] = 0; \
            st[g][S_I][k] = 2; \
            active[g] &= (__mmask16)~(1u << (k)); \
        } \
    } while (0)
    if (count >= G * W && vector_walk()) {
        for (int g = 0; g < G; g++)
            for (int k = 0; k < W; k++) LANE_START(g, k);
        Lanes L[G];
        for (;;) {
            int busy = 0;
            for (int g = 0; g < G; g++) busy += __builtin_popcount(active[g]);
            if (busy < G * W / 2) break;
            for (int g = 0; g < G; g++) {
                L[g].pos = _mm512_loadu_si512(st[g][S_POS]); L[g].rem = _mm512_loadu_si512(st[g][S_REM]);
                L[g].left = _mm512_loadu_si512(st[g][S_LEFT]); L[g].w = _mm512_loadu_si512(st[g][S_W]);
                L[g].i = _mm512_loadu_si512(st[g][S_I]); L[g].blen = _mm512_loadu_si512(st[g][S_BLEN]);
                L[g].bref = _mm512_loadu_si512(st[g][S_BREF]); L[g].opos = _mm512_loadu_si512(st[g][S_OPOS]);
                L[g].win = _mm512_loadu_si512(st[g][S_WIN]); L[g].wn = _mm512_loadu_si512(st[g][S_WN]);
                L[g].active = active[g];
                L[g].done = 0;
            }
            for (;;) {
                __mmask16 any = 0;
                for (int g = 0; g < G; g++) {
                    lanes_step(&L[g], t, base, out);
                    any |= L[g].done;
                }
                if (any) break;
            }
            for (int g = 0; g < G; g++) {
                _mm512_storeu_si512(st[g][S_POS], L[g].pos); _mm512_storeu_si512(st[g][S_REM], L[g].rem);
                _mm512_storeu_si512(st[g][S_LEFT], L[g].left); _mm512_storeu_si512(st[g][S_W], L[g].w);
                _mm512_storeu_si512(st[g][S_I], L[g].i); _mm512_storeu_si512(st[g][S_BLEN], L[g].blen);
                _mm512_storeu_si512(st[g][S_BREF], L[g].bref); _mm512_storeu_si512(st[g][S_OPOS], L[g].opos);
                _mm512_storeu_si512(st[g][S_WIN], L[g].win); _mm512_storeu_si512(st[g][S_WN], L[g].wn);
                active[g] = L[g].active;
                for (int k = 0; k < W; k++) {
                    if (!(L[g].done >> k & 1)) continue;
                    uint32_t dk = doc[g][k], n_ids = st[g][S_OPOS][k] - out_off[dk];
                    n_out[dk] = n_ids;
                    for (uint32_t *p = out + out_off[dk], *e = p + n_ids; p < e; p++) *p = t->tok[*p];
                    LANE_START(g, k);
                }
            }
        }
        /* lanes still busy: finish from the start of their current token */
        for (int g = 0; g < G; g++)
            for (int k = 0; k < W; k++) {
                if (!(active[g] >> k & 1)) continue;
                uint32_t dk = doc[g][k];
                for (uint32_t *p = out + out_off[dk], *e = out + st[g][S_OPOS][k]; p < e; p++) *p = t->tok[*p];
                uint32_t o = st[g][S_OPOS][k];
                o += (uint32_t)encode_until(t, base + st[g][S_POS][k], st[g][S_REM][k], st[g][S_LEFT][k], out + o, NULL);
                n_out[dk] = o - out_off[dk];
            }
    }
#undef LANE_START
#endif
    for (; d < count; d++)
        n_out[d] = stop[d] ? (uint32_t)encode_until(t, base + off[d], len[d], stop[d], out + out_off[d], NULL) : 0;
}

/* Speculative splitting of one long text.  Walking one text is a chain of
 * dependent loads; to walk many at once, the text is cut into segments, and each segment is walked from its first byte as if a token
 * started there.  The guess is usually wrong, but greedy longest match
 * depends only on the bytes from its position on, so once the exact walk of
 * the previous segment lands on one of a segment's token boundaries, the two
 * walks agree from there on, which happens within a few tokens.  Splicing: the
 * exact walk continues token by token until it meets such a boundary, then
 * takes the segment's tokens.  The result equals the plain walk. */
enum { SEG_MIN = 512, SEG_MAX = 2048, SEGS_PER_WINDOW = 32, SPLIT_MIN = 16 * SEG_MIN, SPLIT_TAIL = 512 };

#ifdef __AVX512F__   /* without it the segments would be walked one by one: no gain */
static size_t encode_split(const Tokenizer *t, const uint8_t *s, size_t n, uint32_t *out)
{
    /* segments of up to 2 KB (longer: fewer splices), at least 16 of them (one
     * per vector lane) */
    size_t seg = (n - SPLIT_TAIL) / 16;
    seg = seg < SEG_MIN ? SEG_MIN : seg > SEG_MAX ? SEG_MAX : seg;
    uint32_t *ids = malloc((size_t)SEGS_PER_WINDOW * seg * sizeof *ids);
    if (!ids) return encode_until(t, s, n, n, out, NULL);
    uint32_t off[SEGS_PER_WINDOW], len[SEGS_PER_WINDOW], stop[SEGS_PER_WINDOW], out_off[SEGS_PER_WINDOW],
        n_out[SEGS_PER_WINDOW];
    /* pieces never read within SPLIT_TAIL bytes of the end (a token is at most
     * 255 bytes, plus 4 for the window), so s needs no padding */
    const size_t limit = n - SPLIT_TAIL;
    size_t pos = 0;
    uint32_t *o = out;
    while (pos < limit && limit - pos >= 16 * seg) {
        size_t k_count = (limit - pos) / seg;
        if (k_count > SEGS_PER_WINDOW) k_count = SEGS_PER_WINDOW;
        const uint8_t *w0 = s + pos;
        const size_t avail = n - pos;
        for (size_t k = 0; k < k_count; k++) {
            off[k] = (uint32_t)(k * seg);
            len[k] = (uint32_t)(avail - k * seg < 2 * seg ? avail - k * seg : 2 * seg);   /* >= seg + 259 */
            stop[k] = seg;
            out_off[k] = (uint32_t)(k * seg);
        }
        walk_pieces(t, w0, k_count, off, len, stop, ids, out_off, n_out);
        /* splice; at is the exact position relative to w0 */
        size_t at = 0;
        for (size_t k = 0; k < k_count; k++) {
            const uint32_t *seg_ids = ids + k * seg;
            size_t b = k * seg, j = 0, m = n_out[k], seg_stop = b + seg;
            int synced = 0;
            for (;;) {
                while (j < m && b < at) b += t->len_of[seg_ids[j++]];
                if (b == at) { synced = 1; break; }
                if (at >= seg_stop) break;   /* passed this segment without meeting it */
                size_t step;
                o += encode_until(t, w0 + at, avail - at, 1, o, &step);
                at += step;
            }
            if (synced) {
                memcpy(o, seg_ids + j, (m - j) * sizeof *o);
                o += m - j;
                for (; j < m; j++) at += t->len_of[seg_ids[j]];
            }
        }
        pos += at;
    }
    free(ids);
    o += encode_until(t, s + pos, n - pos, n - pos, o, NULL);
    return (size_t)(o - out);
}
#endif

size_t tokenizer_encode(const Tokenizer *t, const uint8_t *s, size_t n, uint32_t *out)
{
#ifdef __AVX512F__
    if (n >= SPLIT_MIN + SPLIT_TAIL && vector_walk()) return encode_split(t, s, n, out);
#endif
    return encode_until(t, s, n, n, out, NULL);
}

void tokenizer_encode_many(const Tokenizer *t, const uint8_t *base, size_t count, const uint32_t *off,
                           const uint32_t *len, uint32_t *out, const uint32_t *out_off, uint32_t *n_out)
{
    /* long texts are split (tokenizer_encode); the short ones walked side by side */
    enum { BATCH = 256 };
    uint32_t b_off[BATCH], b_len[BATCH], b_out_off[BATCH], b_n[BATCH];
    size_t b_doc[BATCH];
    size_t d = 0;
    while (d < count) {
        size_t k = 0;
        for (; d < count && k < BATCH; d++) {
            if (len[d] >= SPLIT_MIN + SPLIT_TAIL) {
                n_out[d] = (uint32_t)tokenizer_encode(t, base + off[d], len[d], out + out_off[d]);
                continue;
            }
            b_off[k] = off[d]; b_len[k] = len[d]; b_out_off[k] = out_off[d]; b_doc[k++] = d;
        }
        walk_pieces(t, base, k, b_off, b_len, b_len, out, b_out_off, b_n);
        for (size_t j = 0; j < k; j++) n_out[b_doc[j]] = b_n[j];
    }
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
        if (grow(buf, cap, *len + l)) return fail(e, "out of memory");
        memcpy(*buf + *len, vocab_token(v, id), l);
        *len += l;
    }
    return 0;
}
