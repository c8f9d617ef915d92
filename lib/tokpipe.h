/* tokpipe.h: the rwkv-tokenize pipeline, JSON lines -> token stream, and back.
 *
 * Encoding reads the inputs in chunks of whole lines (a chunk never spans two
 * files), extracts and validates one string field per line (jsonl.h), encodes
 * the texts (tokenizer.h) on `threads` worker threads while the calling thread
 * reads the next chunk and writes the previous one, and writes the documents
 * in input order: a binary token stream (tokstream.h) or, with `text`, one
 * line of space-separated ids per document.  A bad line fails the run with
 * "FILE:LINE: reason" unless `skip_bad`, which counts it instead.  On failure
 * no closing record is written, so the stream stays recognisably incomplete.
 *
 * Decoding turns a binary token stream or its text form (auto-detected), or
 * ids given as strings, back into text, one document per line.
 *
 * Errors are returned (Error), never printed; the callbacks let the caller
 * report skipped lines and progress. */
#ifndef RWKV7C_TOKPIPE_H
#define RWKV7C_TOKPIPE_H
#include <stdint.h>
#include <stdio.h>
#include "tokenizer.h"
#include "util.h"
#include "vocab.h"

typedef struct {
    uint64_t docs, tokens, bad, bytes;   /* bytes: input bytes read, newlines included */
} TokpipeCounts;

typedef struct {
    const Tokenizer *tok;
    const char *field;      /* the JSON member to tokenize, e.g. "text" */
    size_t field_len;
    int eod;                /* append id 0 to each document */
    int skip_bad;           /* count bad lines rather than fail */
    int text;               /* ids as text instead of the binary stream */
    int threads;            /* >= 1; 1 = everything on the calling thread */
    /* called for each skipped bad line (may be NULL) */
    void (*on_bad)(void *ctx, const char *file, uint64_t line, const char *msg, uint64_t nth_bad);
    /* called after each chunk is written (may be NULL) */
    void (*on_progress)(void *ctx, const TokpipeCounts *c);
    void *ctx;
} TokpipeOptions;

/* Tokenize files[0..nfiles) ("-" or nfiles == 0: stdin) to out.  Returns 0
 * with *counts filled (may be NULL), or -1. */
int tokpipe_encode(char **files, int nfiles, const TokpipeOptions *o, FILE *out, TokpipeCounts *counts, Error *e);

/* Decode to out, one document per line.  If every arg is a decimal number the
 * args are the ids; otherwise they are files ("-" or n == 0: stdin) holding a
 * binary token stream or ids as text.  Returns 0 or -1. */
int tokpipe_decode(char **args, int n, const Vocab *v, FILE *out, Error *e);
#endif
