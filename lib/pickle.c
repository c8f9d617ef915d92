/* pickle.c: recogniser and writer for torch's tensor-dict pickle (see pickle.h). */
#include "pickle.h"
#include "growbuf.h"
#include "utf8.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STACK   (1 << 20)
#define MAX_MARKS   32
#define MAX_MEMO    (1 << 20)
#define MAX_STRING  (1 << 16)
#define MAX_GLOBAL  256
/* Tuples stay alive until the end (a tuple may hold another), so their number
 * must be capped or a run of TUPLE1 opcodes grows memory 40 bytes per input byte.
 * torch.save writes about 6 tuples and 30 tuple items per tensor; these caps
 * leave room for PICKLE_MAX_TENSORS tensors and bound the tables to ~80 MB. */
#define MAX_TUPLES       (16 * PICKLE_MAX_TENSORS)
#define MAX_TUPLE_ITEMS  (64 * PICKLE_MAX_TENSORS)

/* Pickle opcodes (CPython Lib/pickletools.py).  The first group is the grammar
 * torch.save writes and run() accepts; the rest are named only in errors. */
enum Opcode {
    OP_PROTO = 0x80, OP_STOP = '.', OP_GLOBAL = 'c', OP_BINPUT = 'q', OP_LONG_BINPUT = 'r',
    OP_BINGET = 'h', OP_LONG_BINGET = 'j', OP_MARK = '(', OP_TUPLE = 't', OP_EMPTY_TUPLE = ')',
    OP_TUPLE1 = 0x85, OP_TUPLE2 = 0x86, OP_TUPLE3 = 0x87, OP_BINUNICODE = 'X', OP_BININT1 = 'K',
    OP_BININT2 = 'M', OP_BININT = 'J', OP_LONG1 = 0x8a, OP_BINPERSID = 'Q', OP_NEWTRUE = 0x88,
    OP_NEWFALSE = 0x89, OP_NONE = 'N', OP_REDUCE = 'R', OP_EMPTY_DICT = '}', OP_SETITEM = 's',
    OP_SETITEMS = 'u', OP_BUILD = 'b',
    /* refused */
    OP_INST = 'i', OP_OBJ = 'o', OP_STACK_GLOBAL = 0x93, OP_NEWOBJ = 0x81, OP_NEWOBJ_EX = 0x92,
    OP_EXT1 = 0x82, OP_EXT2 = 0x83, OP_EXT4 = 0x84, OP_PERSID = 'P', OP_FRAME = 0x95,
    OP_SHORT_BINUNICODE = 0x8c, OP_MEMOIZE = 0x94, OP_UNICODE = 'V', OP_STRING = 'S',
    OP_BINSTRING = 'T', OP_SHORT_BINSTRING = 'U', OP_BINBYTES = 'B', OP_SHORT_BINBYTES = 'C',
    OP_BINBYTES8 = 0x8e, OP_BINFLOAT = 'G', OP_EMPTY_LIST = ']', OP_APPEND = 'a', OP_APPENDS = 'e',
    OP_LIST = 'l', OP_DICT = 'd', OP_EMPTY_SET = 0x8f, OP_LONG4 = 0x8b,
};

enum { V_NONE, V_BOOL, V_INT, V_STR, V_TUPLE, V_DICT, V_GLOBAL, V_STORAGE, V_TENSOR };
enum { G_ODICT, G_REBUILD_V2, G_REBUILD_PARAM, G_STORAGE };

/* 16 bytes: a pickle byte can make one Value, so its size is the memory
 * amplification of the recogniser (see MAX_TUPLES). */
typedef struct {
    uint8_t kind, sub;            /* sub: global kind */
    union {
        int32_t  idx;             /* tuple/dict/storage/tensor index; dtype for G_STORAGE */
        uint32_t slen;            /* V_STR */
    };
    union {
        int64_t     i;            /* V_INT, V_BOOL */
        const char *s;            /* V_STR: points into the pickle */
    };
} Value;
_Static_assert(sizeof(Value) == 16, "Value grew: see MAX_TUPLES");

typedef struct { int32_t start, n; } Tuple;
typedef struct { int32_t n; uint8_t ordered, only_metadata; } Dict;
typedef struct { int32_t dict; Value key, val; } Item;

typedef struct {
    const uint8_t *b;
    size_t len, pos, op;     /* op: offset of the opcode being run */
    Value *stack; int nstack, capstack;
    int marks[MAX_MARKS]; int nmarks;
    Value *memo; uint8_t *memo_set; int capmemo;
    Value *titems; int ntitems, captitems;
    Tuple *tuples; int ntuples, captuples;
    Dict  *dicts; int ndicts, capdicts;
    Item  *items; int nitems, capitems;
    PickleDict *d;
    int   captensor, capstorage;
    int  *keyhash; int capkeyhash;   /* open addressing: storage index + 1, 0 = empty */
    Error *e;
} Unpickler;

static const struct { const char *name; DType dt; } storages[] = {
    { "FloatStorage", DT_F32 }, { "HalfStorage", DT_F16 }, { "BFloat16Storage", DT_BF16 },
    { "DoubleStorage", DT_F64 }, { "LongStorage", DT_I64 }, { "IntStorage", DT_I32 },
    { "ShortStorage", DT_I16 }, { "CharStorage", DT_I8 }, { "ByteStorage", DT_U8 },
    { "BoolStorage", DT_BOOL },
};

const char *pickle_storage_name(DType dt)
{
    for (size_t i = 0; i < sizeof storages / sizeof *storages; i++)
        if (storages[i].dt == dt) return storages[i].name;
    return NULL;
}

static int perr(Unpickler *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int perr(Unpickler *p, const char *fmt, ...)
{
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return fail(p->e, "data.pkl offset %zu: %s", p->op, msg);
}

/* growbuf's grow() for the int counts of this file (all bounded by the MAX_* caps). */
static int grow_int(void *arr, int *cap, int need, size_t sz)
{
    size_t c = (size_t)*cap;
    if (grow_array(arr, &c, (size_t)need, sz)) return -1;
    *cap = (int)c;
    return 0;
}
#define GROW(p, arr, cap, need) (grow_int(&(p)->arr, &(p)->cap, (need), sizeof *(p)->arr) ? perr(p, "out of memory") : 0)

static int push(Unpickler *p, Value v)
{
    if (p->nstack >= MAX_STACK) return perr(p, "stack too deep");
    if (GROW(p, stack, capstack, p->nstack + 1)) return -1;
    p->stack[p->nstack++] = v;
    return 0;
}
static int mark_floor(const Unpickler *p) { return p->nmarks ? p->marks[p->nmarks - 1] : 0; }
static int pop(Unpickler *p, Value *v)
{
    if (p->nstack <= mark_floor(p)) return perr(p, "stack underflow");
    *v = p->stack[--p->nstack];
    return 0;
}
static int need(Unpickler *p, size_t n)
{
    if (p->len - p->pos < n) return perr(p, "truncated pickle");
    return 0;
}
/* Strict UTF-8 as Python's codec (BINUNICODE is decoded with it), and no NUL:
 * names become C strings. */
static int utf8_ok(const char *s, size_t n)
{
    return utf8_valid((const uint8_t *)s, n) && !memchr(s, 0, n);
}
static int str_is(const Value *v, const char *s) { return v->kind == V_STR && v->slen == strlen(s) && !memcmp(v->s, s, v->slen); }
static char *str_dup(const Value *v)
{
    char *s = malloc(v->slen + 1);
    if (s) { memcpy(s, v->s, v->slen); s[v->slen] = 0; }
    return s;
}

static const char *opname(uint8_t op)
{
    switch (op) {
    case OP_INST: return "INST";
    case OP_OBJ: return "OBJ";
    case OP_STACK_GLOBAL: return "STACK_GLOBAL";
    case OP_NEWOBJ: return "NEWOBJ";
    case OP_NEWOBJ_EX: return "NEWOBJ_EX";
    case OP_EXT1: case OP_EXT2: case OP_EXT4: return "EXT";
    case OP_PERSID: return "PERSID";
    case OP_FRAME: return "FRAME";
    case OP_SHORT_BINUNICODE: return "SHORT_BINUNICODE";
    case OP_MEMOIZE: return "MEMOIZE";
    case OP_UNICODE: return "UNICODE";
    case OP_STRING: return "STRING";
    case OP_BINSTRING: case OP_SHORT_BINSTRING: return "BINSTRING";
    case OP_BINBYTES: case OP_SHORT_BINBYTES: case OP_BINBYTES8: return "BINBYTES";
    case OP_BINFLOAT: return "BINFLOAT";
    case OP_EMPTY_LIST: return "EMPTY_LIST";
    case OP_APPEND: case OP_APPENDS: return "APPEND";
    case OP_LIST: return "LIST";
    case OP_DICT: return "DICT";
    case OP_EMPTY_SET: return "EMPTY_SET";
    case OP_LONG4: return "LONG4";
    default: return "unknown";
    }
}

static int op_global(Unpickler *p)
{
    const char *mod = (const char *)p->b + p->pos, *nl = memchr(mod, '\n', p->len - p->pos);
    if (!nl) return perr(p, "truncated GLOBAL");
    const char *name = nl + 1, *nl2 = memchr(name, '\n', p->len - (size_t)(name - (const char *)p->b));
    if (!nl2) return perr(p, "truncated GLOBAL");
    size_t ml = (size_t)(nl - mod), nlen = (size_t)(nl2 - name);
    if (ml > MAX_GLOBAL || nlen > MAX_GLOBAL) return perr(p, "GLOBAL name too long");
    for (size_t i = 0; i < ml; i++) if (mod[i] < 0x21 || mod[i] > 0x7e) return perr(p, "GLOBAL with a non-ASCII module name refused");
    for (size_t i = 0; i < nlen; i++) if (name[i] < 0x21 || name[i] > 0x7e) return perr(p, "GLOBAL with a non-ASCII name refused");
    p->pos = (size_t)(nl2 + 1 - (const char *)p->b);
    Value v = { .kind = V_GLOBAL };
#define IS(m, n) (ml == strlen(m) && !memcmp(mod, m, ml) && nlen == strlen(n) && !memcmp(name, n, nlen))
    if (IS("collections", "OrderedDict")) v.sub = G_ODICT;
    else if (IS("torch._utils", "_rebuild_tensor_v2")) v.sub = G_REBUILD_V2;
    else if (IS("torch._utils", "_rebuild_parameter")) v.sub = G_REBUILD_PARAM;
    else {
        int found = 0;
        if (ml == 5 && !memcmp(mod, "torch", 5)) {
            for (size_t i = 0; i < sizeof storages / sizeof *storages; i++)
                if (nlen == strlen(storages[i].name) && !memcmp(name, storages[i].name, nlen)) {
                    v.sub = G_STORAGE;
                    v.idx = (int32_t)storages[i].dt;
                    found = 1;
                }
        }
        if (!found) {
            if (IS("torch._utils", "_rebuild_tensor_v3"))
                return perr(p, "GLOBAL torch._utils._rebuild_tensor_v3 (new dtypes) is not supported");
            return perr(p, "GLOBAL %.*s.%.*s refused: a tensor file may only name collections.OrderedDict, "
                        "torch._utils._rebuild_tensor_v2/_rebuild_parameter and torch.*Storage (nothing is executed)",
                        (int)ml, mod, (int)nlen, name);
        }
    }
#undef IS
    return push(p, v);
}

static int make_tuple(Unpickler *p, int from)
{
    int n = p->nstack - from;
    if (p->ntuples >= MAX_TUPLES) return perr(p, "more than %d tuples (not a tensor dict)", MAX_TUPLES);
    if (p->ntitems + n > MAX_TUPLE_ITEMS) return perr(p, "more than %d tuple items (not a tensor dict)", MAX_TUPLE_ITEMS);
    if (GROW(p, tuples, captuples, p->ntuples + 1) || GROW(p, titems, captitems, p->ntitems + n)) return -1;
    Tuple *t = &p->tuples[p->ntuples];
    t->start = p->ntitems;
    t->n = n;
    if (n) memcpy(p->titems + p->ntitems, p->stack + from, (size_t)n * sizeof(Value));
    p->ntitems += n;
    p->nstack = from;
    Value v = { .kind = V_TUPLE, .idx = p->ntuples++ };
    return push(p, v);
}

static int new_dict(Unpickler *p, int ordered)
{
    if (GROW(p, dicts, capdicts, p->ndicts + 1)) return -1;
    p->dicts[p->ndicts].n = 0;
    p->dicts[p->ndicts].ordered = (uint8_t)ordered;
    p->dicts[p->ndicts].only_metadata = 1;
    Value v = { .kind = V_DICT, .idx = p->ndicts++ };
    return push(p, v);
}

static int set_item(Unpickler *p, const Value *dict, const Value *k, const Value *v)
{
    if (dict->kind != V_DICT) return perr(p, "SETITEM on something that is not a dict");
    if (k->kind != V_STR) return perr(p, "dict key is not a string");
    if (v->kind != V_TENSOR && v->kind != V_DICT && v->kind != V_INT && v->kind != V_BOOL && v->kind != V_NONE &&
        v->kind != V_STR)
        return perr(p, "unexpected dict value (a tuple, storage or global)");
    if (GROW(p, items, capitems, p->nitems + 1)) return -1;
    p->items[p->nitems++] = (Item){ dict->idx, *k, *v };
    if (!str_is(k, "_metadata")) p->dicts[dict->idx].only_metadata = 0;
    p->dicts[dict->idx].n++;
    return 0;
}

/* The items of tuple t (NULL for an empty one before any item exists: NULL + 0 is UB). */
static const Value *tuple_items(const Unpickler *p, const Tuple *t) { return t->n ? p->titems + t->start : NULL; }

static int empty_dict(const Unpickler *p, const Value *v) { return v->kind == V_DICT && p->dicts[v->idx].n == 0; }
static int nonneg_int(const Value *v) { return v->kind == V_INT && v->i >= 0; }

static size_t key_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;   /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return (size_t)h;
}

/* Look up a storage key: *found = its index or -1, *slot = where to insert it.
 * A hash table, so a pickle of many storage references stays linear. */
static int find_key(Unpickler *p, const Value *k, int *found, size_t *slot)
{
    if (p->d->nstorage + 1 > p->capkeyhash / 2) {   /* keep the load factor under 1/2 */
        int cap = p->capkeyhash ? p->capkeyhash * 2 : 64;
        int *t = calloc((size_t)cap, sizeof *t);
        if (!t) return perr(p, "out of memory");
        for (int i = 0; i < p->d->nstorage; i++) {
            const char *key = p->d->storage[i].key;
            size_t h = key_hash(key, strlen(key)) & (size_t)(cap - 1);
            while (t[h]) h = (h + 1) & (size_t)(cap - 1);
            t[h] = i + 1;
        }
        free(p->keyhash);
        p->keyhash = t;
        p->capkeyhash = cap;
    }
    size_t mask = (size_t)p->capkeyhash - 1, h = key_hash(k->s, k->slen) & mask;
    *found = -1;
    while (p->keyhash[h]) {
        const char *key = p->d->storage[p->keyhash[h] - 1].key;
        if (strlen(key) == k->slen && !memcmp(key, k->s, k->slen)) { *found = p->keyhash[h] - 1; break; }
        h = (h + 1) & mask;
    }
    *slot = h;
    return 0;
}

static int op_persid(Unpickler *p)
{
    Value t = { 0 };
    if (pop(p, &t)) return -1;
    if (t.kind != V_TUPLE || p->tuples[t.idx].n != 5) return perr(p, "persistent id is not a ('storage', type, key, location, numel) tuple");
    const Value *a = tuple_items(p, &p->tuples[t.idx]);
    if (!str_is(&a[0], "storage")) return perr(p, "persistent id does not start with 'storage'");
    if (a[1].kind != V_GLOBAL || a[1].sub != G_STORAGE) return perr(p, "persistent id without a storage type");
    if (a[2].kind != V_STR || a[2].slen < 1 || a[2].slen > 9) return perr(p, "bad storage key");
    for (uint32_t i = 0; i < a[2].slen; i++) if (a[2].s[i] < '0' || a[2].s[i] > '9') return perr(p, "bad storage key");
    if (a[3].kind != V_STR || a[3].slen >= sizeof p->d->storage->location) return perr(p, "bad storage location");
    for (uint32_t i = 0; i < a[3].slen; i++) if (a[3].s[i] < 0x21 || a[3].s[i] > 0x7e) return perr(p, "bad storage location");
    if (!nonneg_int(&a[4])) return perr(p, "bad storage size");
    DType dt = (DType)a[1].idx;
    uint64_t numel = (uint64_t)a[4].i, bytes;
    if (mul_overflow_u64(numel, dtype_size(dt), &bytes) || bytes > (1ull << 48)) return perr(p, "storage size %llu is implausible", (unsigned long long)numel);
    PickleDict *d = p->d;
    int found = -1;
    size_t slot = 0;
    if (find_key(p, &a[2], &found, &slot)) return -1;
    if (found >= 0) {
        if (d->storage[found].dtype != dt || d->storage[found].numel != numel)
            return perr(p, "storage %s is referenced with two different types or sizes", d->storage[found].key);
    } else {
        if (grow_int(&d->storage, &p->capstorage, d->nstorage + 1, sizeof *d->storage)) return perr(p, "out of memory");
        PickleStorage *s = &d->storage[d->nstorage];
        memset(s, 0, sizeof *s);
        s->key = str_dup(&a[2]);
        if (!s->key) return perr(p, "out of memory");
        s->dtype = dt;
        s->numel = numel;
        memcpy(s->location, a[3].s, a[3].slen);
        found = d->nstorage++;
        p->keyhash[slot] = found + 1;
    }
    Value v = { .kind = V_STORAGE, .idx = found };
    return push(p, v);
}

static int rebuild_tensor(Unpickler *p, const Value *a, int n)
{
    if (n != 6 && n != 7) return perr(p, "_rebuild_tensor_v2 with %d arguments", n);
    if (a[0].kind != V_STORAGE) return perr(p, "_rebuild_tensor_v2: first argument is not a storage");
    if (!nonneg_int(&a[1])) return perr(p, "_rebuild_tensor_v2: bad storage offset");
    if (a[2].kind != V_TUPLE || a[3].kind != V_TUPLE) return perr(p, "_rebuild_tensor_v2: size/stride are not tuples");
    const Tuple *ts = &p->tuples[a[2].idx], *tt = &p->tuples[a[3].idx];
    if (ts->n != tt->n) return perr(p, "_rebuild_tensor_v2: size and stride differ in length");
    if (ts->n > TENSOR_MAX_DIM) return perr(p, "tensor with %d dimensions (at most %d)", ts->n, TENSOR_MAX_DIM);
    if (a[4].kind != V_BOOL) return perr(p, "_rebuild_tensor_v2: requires_grad is not a bool");
    if (!empty_dict(p, &a[5])) return perr(p, "_rebuild_tensor_v2: backward hooks are not an empty OrderedDict");
    if (n == 7 && !empty_dict(p, &a[6])) return perr(p, "_rebuild_tensor_v2: tensor metadata is not supported");
    const PickleStorage *st = &p->d->storage[a[0].idx];
    PickleTensor t = { .storage = a[0].idx, .offset = (uint64_t)a[1].i, .ndim = ts->n };
    /* extent = offset + sum (size_i - 1) * stride_i + 1, or 0 if any size is 0 */
    uint64_t last = t.offset, numel = 1;
    int empty = 0;
    for (int i = 0; i < ts->n; i++) {
        const Value *sv = tuple_items(p, ts) + i, *rv = tuple_items(p, tt) + i;
        if (!nonneg_int(sv) || !nonneg_int(rv)) return perr(p, "tensor size/stride not non-negative integers");
        t.size[i] = sv->i;
        t.stride[i] = rv->i;
        if (sv->i == 0) empty = 1;
        uint64_t span;
        if (sv->i > 0 && (mul_overflow_u64((uint64_t)sv->i - 1, (uint64_t)rv->i, &span) || span > UINT64_MAX - last ||
                          (last += span) > (1ull << 62)))
            return perr(p, "tensor extent overflows");
        if (mul_overflow_u64(numel, (uint64_t)sv->i, &numel)) return perr(p, "tensor size overflows");
    }
    if (!empty && last >= st->numel)
        return perr(p, "tensor (offset %llu, extent to element %llu) lies outside its storage %s of %llu elements",
                    (unsigned long long)t.offset, (unsigned long long)last, st->key, (unsigned long long)st->numel);
    PickleDict *d = p->d;
    if (d->ntensor >= PICKLE_MAX_TENSORS) return perr(p, "more than %d tensors", PICKLE_MAX_TENSORS);
    if (grow_int(&d->tensor, &p->captensor, d->ntensor + 1, sizeof *d->tensor)) return perr(p, "out of memory");
    d->tensor[d->ntensor] = t;
    Value v = { .kind = V_TENSOR, .idx = d->ntensor++ };
    return push(p, v);
}

static int op_reduce(Unpickler *p)
{
    Value args = { 0 }, fn = { 0 };
    if (pop(p, &args) || pop(p, &fn)) return -1;
    if (fn.kind != V_GLOBAL) return perr(p, "REDUCE of something that is not an allowed global refused");
    if (args.kind != V_TUPLE) return perr(p, "REDUCE arguments are not a tuple");
    const Tuple *t = &p->tuples[args.idx];
    const Value *a = tuple_items(p, t);
    switch (fn.sub) {
    case G_ODICT:
        if (t->n != 0) return perr(p, "OrderedDict called with arguments refused");
        return new_dict(p, 1);
    case G_REBUILD_V2:
        return rebuild_tensor(p, a, t->n);
    case G_REBUILD_PARAM:
        if (t->n != 3 || a[0].kind != V_TENSOR || a[1].kind != V_BOOL || !empty_dict(p, &a[2]))
            return perr(p, "_rebuild_parameter with unexpected arguments");
        return push(p, a[0]);
    default:
        return perr(p, "REDUCE of a storage type refused");
    }
}

static int op_build(Unpickler *p)
{
    Value state = { 0 }, target = { 0 };
    if (pop(p, &state) || pop(p, &target)) return -1;
    if (target.kind != V_DICT || !p->dicts[target.idx].ordered || state.kind != V_DICT)
        return perr(p, "BUILD is only accepted for an OrderedDict's _metadata");
    if (!p->dicts[state.idx].only_metadata) return perr(p, "BUILD state with a key other than _metadata refused");
    p->d->metadata = 1;
    return push(p, target);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(((const PickleTensor *)a)->name, ((const PickleTensor *)b)->name);
}

static int finish(Unpickler *p)
{
    if (p->nmarks) return perr(p, "STOP with an open MARK");
    if (p->nstack != 1 || p->stack[0].kind != V_DICT) return perr(p, "the pickle is not a single dict");
    int top = p->stack[0].idx;
    PickleDict *d = p->d;
    /* Rebuild the tensor list in dict order, with names. */
    PickleTensor *list = calloc((size_t)p->dicts[top].n + 1, sizeof *list);
    if (!list) return perr(p, "out of memory");
    int n = 0;
    for (int i = 0; i < p->nitems; i++) {
        const Item *it = &p->items[i];
        if (it->dict != top) continue;
        if (it->val.kind != V_TENSOR) {
            for (int j = 0; j < n; j++) free(list[j].name);
            free(list);
            char shown[101];   /* never echo control bytes to a terminal */
            size_t sl = it->key.slen > 100 ? 100 : it->key.slen;
            for (size_t q = 0; q < sl; q++) shown[q] = (unsigned char)it->key.s[q] < 0x20 ? '?' : it->key.s[q];
            shown[sl] = 0;
            return perr(p, "dict entry '%s' is not a tensor", shown);
        }
        if (it->key.slen == 0 || it->key.slen > PICKLE_MAX_NAME || !utf8_ok(it->key.s, it->key.slen)) {
            for (int j = 0; j < n; j++) free(list[j].name);
            free(list);
            return perr(p, "bad tensor name (empty, too long or not UTF-8)");
        }
        list[n] = d->tensor[it->val.idx];
        list[n].name = str_dup(&it->key);
        if (!list[n].name) {
            for (int j = 0; j < n; j++) free(list[j].name);
            free(list);
            return perr(p, "out of memory");
        }
        n++;
    }
    free(d->tensor);
    d->tensor = list;
    d->ntensor = n;
    d->ordered = p->dicts[top].ordered;
    PickleTensor *sorted = malloc((size_t)(n + 1) * sizeof *sorted);
    if (!sorted) return perr(p, "out of memory");
    memcpy(sorted, list, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_names);
    for (int i = 1; i < n; i++)
        if (!strcmp(sorted[i].name, sorted[i - 1].name)) {
            int rc = perr(p, "duplicate tensor name '%s'", sorted[i].name);
            free(sorted);
            return rc;
        }
    free(sorted);
    return 0;
}

void pickle_free(PickleDict *d)
{
    if (!d) return;
    for (int i = 0; i < d->nstorage; i++) free(d->storage[i].key);
    for (int i = 0; i < d->ntensor; i++) free(d->tensor[i].name);
    free(d->storage);
    free(d->tensor);
    memset(d, 0, sizeof *d);
}

/* BINPUT / LONG_BINPUT: remember the top of the stack under an index of width bytes. */
static int op_memo_put(Unpickler *p, size_t width)
{
    if (need(p, width)) return -1;
    uint32_t i = width == 1 ? p->b[p->pos] : load_le32(p->b + p->pos);
    p->pos += width;
    if (i >= MAX_MEMO) return perr(p, "memo index %u too large", i);
    if (p->nstack <= mark_floor(p)) return perr(p, "BINPUT with an empty stack");
    if ((int)i >= p->capmemo) {
        int old_cap = p->capmemo;
        if (GROW(p, memo, capmemo, (int)i + 1)) return -1;
        uint8_t *set = realloc(p->memo_set, (size_t)p->capmemo);   /* same capacity as memo */
        if (!set) return perr(p, "out of memory");
        memset(set + old_cap, 0, (size_t)(p->capmemo - old_cap));
        p->memo_set = set;
    }
    p->memo[i] = p->stack[p->nstack - 1];
    p->memo_set[i] = 1;
    return 0;
}

/* BINGET / LONG_BINGET */
static int op_memo_get(Unpickler *p, size_t width)
{
    if (need(p, width)) return -1;
    uint32_t i = width == 1 ? p->b[p->pos] : load_le32(p->b + p->pos);
    p->pos += width;
    if ((int64_t)i >= p->capmemo || !p->memo_set[i]) return perr(p, "memo index %u was never stored", i);
    return push(p, p->memo[i]);
}

static int op_unicode(Unpickler *p)
{
    if (need(p, 4)) return -1;
    uint32_t n = load_le32(p->b + p->pos);
    p->pos += 4;
    if (n > MAX_STRING) return perr(p, "string of %u bytes refused", n);
    if (need(p, n)) return -1;
    if (!utf8_ok((const char *)p->b + p->pos, n)) return perr(p, "string is not valid UTF-8");
    Value v = { .kind = V_STR, .slen = n, .s = (const char *)p->b + p->pos };
    p->pos += n;
    return push(p, v);
}

/* BININT1, BININT2, BININT, LONG1 */
static int op_int(Unpickler *p, uint8_t op)
{
    Value v = { .kind = V_INT };
    size_t width = op == OP_BININT1 ? 1 : op == OP_BININT2 ? 2 : op == OP_BININT ? 4 : 1;
    if (need(p, width)) return -1;
    const uint8_t *q = p->b + p->pos;
    p->pos += width;
    if (op == OP_BININT1) v.i = q[0];
    else if (op == OP_BININT2) v.i = q[0] | q[1] << 8;
    else if (op == OP_BININT) v.i = (int32_t)load_le32(q);
    else {   /* LONG1: n bytes of little-endian two's complement */
        unsigned n = q[0];
        if (n > 8) return perr(p, "integer of %u bytes refused", n);
        if (need(p, n)) return -1;
        q = p->b + p->pos;
        uint64_t u = 0;
        for (unsigned i = 0; i < n; i++) u |= (uint64_t)q[i] << (8 * i);
        if (n && n < 8 && (q[n - 1] & 0x80)) u |= ~0ull << (8 * n);   /* sign-extend */
        p->pos += n;
        v.i = (int64_t)u;
    }
    return push(p, v);
}

static int op_mark(Unpickler *p)
{
    if (p->nmarks >= MAX_MARKS) return perr(p, "MARKs nested too deeply");
    p->marks[p->nmarks++] = p->nstack;
    return 0;
}

/* TUPLE (n < 0: back to the last MARK), EMPTY_TUPLE, TUPLE1..3 */
static int op_tuple(Unpickler *p, int n)
{
    if (n < 0) {
        if (!p->nmarks) return perr(p, "TUPLE without MARK");
        return make_tuple(p, p->marks[--p->nmarks]);
    }
    if (p->nstack - mark_floor(p) < n) return perr(p, "stack underflow");
    return make_tuple(p, p->nstack - n);
}

static int op_setitem(Unpickler *p)
{
    Value k = { 0 }, x = { 0 };
    if (pop(p, &x) || pop(p, &k)) return -1;
    if (p->nstack <= mark_floor(p)) return perr(p, "SETITEM without a dict");
    return set_item(p, &p->stack[p->nstack - 1], &k, &x);
}

static int op_setitems(Unpickler *p)
{
    if (!p->nmarks) return perr(p, "SETITEMS without MARK");
    int from = p->marks[--p->nmarks];
    if ((p->nstack - from) % 2) return perr(p, "SETITEMS with an odd number of items");
    if (from <= mark_floor(p)) return perr(p, "SETITEMS without a dict");
    for (int i = from; i < p->nstack; i += 2)
        if (set_item(p, &p->stack[from - 1], &p->stack[i], &p->stack[i + 1])) return -1;
    p->nstack = from;
    return 0;
}

static int push_simple(Unpickler *p, uint8_t kind, int64_t i)
{
    Value v = { .kind = kind, .i = i };
    return push(p, v);
}

/* Run one opcode (not STOP). */
static int step(Unpickler *p, uint8_t op)
{
    switch (op) {
    case OP_PROTO:
        if (need(p, 1)) return -1;
        if (p->op != 0) return perr(p, "PROTO in the middle of the pickle");
        if (p->b[p->pos] != 2) return perr(p, "pickle protocol %u is not supported (torch.save writes 2)", p->b[p->pos]);
        p->pos++;
        return 0;
    case OP_GLOBAL: return op_global(p);
    case OP_BINPUT: return op_memo_put(p, 1);
    case OP_LONG_BINPUT: return op_memo_put(p, 4);
    case OP_BINGET: return op_memo_get(p, 1);
    case OP_LONG_BINGET: return op_memo_get(p, 4);
    case OP_MARK: return op_mark(p);
    case OP_TUPLE: return op_tuple(p, -1);
    case OP_EMPTY_TUPLE: return op_tuple(p, 0);
    case OP_TUPLE1: case OP_TUPLE2: case OP_TUPLE3: return op_tuple(p, op - OP_TUPLE1 + 1);
    case OP_BINUNICODE: return op_unicode(p);
    case OP_BININT1: case OP_BININT2: case OP_BININT: case OP_LONG1: return op_int(p, op);
    case OP_BINPERSID: return op_persid(p);
    case OP_NEWTRUE: return push_simple(p, V_BOOL, 1);
    case OP_NEWFALSE: return push_simple(p, V_BOOL, 0);
    case OP_NONE: return push_simple(p, V_NONE, 0);
    case OP_REDUCE: return op_reduce(p);
    case OP_EMPTY_DICT: return new_dict(p, 0);
    case OP_SETITEM: return op_setitem(p);
    case OP_SETITEMS: return op_setitems(p);
    case OP_BUILD: return op_build(p);
    default:
        return perr(p, "opcode 0x%02x (%s) refused: not part of the tensor-dict grammar torch.save writes", op, opname(op));
    }
}

static int run(Unpickler *p)
{
    if (p->len < 2 || p->b[0] != OP_PROTO) { p->op = 0; return perr(p, "not a pickle (no PROTO opcode)"); }
    for (;;) {
        p->op = p->pos;
        if (p->pos >= p->len) return perr(p, "truncated pickle (no STOP)");
        uint8_t op = p->b[p->pos++];
        if (op == OP_STOP) break;
        if (step(p, op)) return -1;
    }
    if (p->pos != p->len) { p->op = p->pos; return perr(p, "%zu bytes after STOP", p->len - p->pos); }
    return finish(p);
}

int pickle_parse(const void *buf, size_t len, PickleDict *d, Error *e)
{
    memset(d, 0, sizeof *d);
    if (len > PICKLE_MAX_BYTES) return fail(e, "data.pkl: %zu bytes is too large", len);
    Unpickler p = { .b = buf, .len = len, .d = d, .e = e };
    int rc = run(&p);
    free(p.keyhash);
    free(p.stack); free(p.memo); free(p.memo_set); free(p.titems); free(p.tuples); free(p.dicts); free(p.items);
    if (rc) pickle_free(d);
    return rc;
}

/* ---- writer ---- */
typedef struct { uint8_t *b; size_t n, cap; int oom; } Buf;

static void put(Buf *o, const void *p, size_t n)
{
    if (o->oom) return;
    if (grow(&o->b, &o->cap, o->n + n)) { o->oom = 1; return; }
    memcpy(o->b + o->n, p, n);
    o->n += n;
}
static void put1(Buf *o, uint8_t c) { put(o, &c, 1); }
static void put_str(Buf *o, const char *s)
{
    uint32_t n = (uint32_t)strlen(s);
    uint8_t h[5] = { OP_BINUNICODE, (uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), (uint8_t)(n >> 24) };
    put(o, h, 5);
    put(o, s, n);
}
static void put_global(Buf *o, const char *mod, const char *name)
{
    put1(o, OP_GLOBAL);
    put(o, mod, strlen(mod));
    put1(o, '\n');
    put(o, name, strlen(name));
    put1(o, '\n');
}
/* CPython's choice: K for 0..255, M for ..65535, J for int32, else LONG1. */
static void put_int(Buf *o, int64_t v)
{
    if (v >= 0 && v < 256) { put1(o, OP_BININT1); put1(o, (uint8_t)v); return; }
    if (v >= 0 && v < 65536) { uint8_t h[3] = { OP_BININT2, (uint8_t)v, (uint8_t)(v >> 8) }; put(o, h, 3); return; }
    if (v >= INT32_MIN && v <= INT32_MAX) {
        uint32_t u = (uint32_t)v;
        uint8_t h[5] = { OP_BININT, (uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24) };
        put(o, h, 5);
        return;
    }
    uint8_t h[10] = { OP_LONG1, 0 };
    uint64_t u = (uint64_t)v;
    int n = 0;
    do {   /* minimal two's complement length */
        h[2 + n] = (uint8_t)(u >> (8 * n));
        n++;
    } while (n < 8 && !((v >= 0 && (v >> (8 * n - 1)) == 0) || (v < 0 && (v >> (8 * n - 1)) == -1)));
    h[1] = (uint8_t)n;
    put(o, h, 2 + (size_t)n);
}
static void put_ints(Buf *o, const int64_t *v, int n)
{
    if (n == 0) { put1(o, OP_EMPTY_TUPLE); return; }
    if (n > 3) put1(o, OP_MARK);
    for (int i = 0; i < n; i++) put_int(o, v[i]);
    put1(o, n > 3 ? OP_TUPLE : (uint8_t)(OP_TUPLE1 + n - 1));
}

int pickle_write_dict(const TensorSet *ts, uint8_t **out, size_t *len, Error *e)
{
    Buf o = { 0 };
    put(&o, "\x80\x02}", 3);
    for (int i = 0; i < ts->n; i++) {
        const Tensor *t = &ts->t[i];
        const char *sname = pickle_storage_name(t->dtype);
        if (!sname) { free(o.b); return fail(e, "%s: dtype %s has no torch storage type", t->name, dtype_name(t->dtype)); }
        int left = ts->n - i, batch_start = i % 1000 == 0;
        /* Items are batched 1000 at a time like CPython; a batch of one uses SETITEM. */
        if (batch_start && !(left == 1)) put1(&o, OP_MARK);
        put_str(&o, t->name);
        put_global(&o, "torch._utils", "_rebuild_tensor_v2");
        put(&o, "((", 2);
        put_str(&o, "storage");
        put_global(&o, "torch", sname);
        char key[24];
        snprintf(key, sizeof key, "%d", i);
        put_str(&o, key);
        put_str(&o, "cpu");
        put_int(&o, tensor_numel(t));
        put1(&o, OP_TUPLE);
        put1(&o, OP_BINPERSID);
        put_int(&o, 0);
        int64_t stride[TENSOR_MAX_DIM], acc = 1;
        for (int d = t->ndim - 1; d >= 0; d--) { stride[d] = acc; acc *= t->shape[d] ? t->shape[d] : 1; }
        put_ints(&o, t->shape, t->ndim);
        put_ints(&o, stride, t->ndim);
        put1(&o, OP_NEWFALSE);
        put_global(&o, "collections", "OrderedDict");
        put(&o, ")Rt", 3);
        put1(&o, OP_REDUCE);
        int batch_end = (i + 1) % 1000 == 0 || i + 1 == ts->n;
        int batch_size = i % 1000 + 1;
        if (batch_end) put1(&o, batch_size == 1 ? OP_SETITEM : OP_SETITEMS);
    }
    put1(&o, OP_STOP);
    if (o.oom) { free(o.b); return fail(e, "out of memory"); }
    *out = o.b;
    *len = o.n;
    return 0;
}
