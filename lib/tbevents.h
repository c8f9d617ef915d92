/* tbevents.h: TensorBoard event files (scalars only), written without protobuf.
 *
 * An event file is a TFRecord stream: each record is a little-endian uint64
 * length, the masked CRC32C of those 8 bytes, the data, and the masked CRC32C
 * of the data.  The data is a serialized tensorflow.Event: the first record
 * holds file_version "brain.Event:2", each later one a wall_time, a step and a
 * Summary of tagged simple_values.  The few protobuf fields are encoded here
 * by hand.  Each record is written with one write() (no stdio buffering), so a
 * killed writer leaves every record it logged; TensorBoard ignores a torn last
 * record. */
#ifndef RWKV7C_TBEVENTS_H
#define RWKV7C_TBEVENTS_H
#include <stddef.h>
#include <stdint.h>
#include "util.h"

typedef struct {
    int   fd;      /* -1 when closed */
    char *path;
} TbWriter;

/* CRC-32C (Castagnoli), as TFRecord uses: crc32c(0, "123456789", 9) == 0xe3069283. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t n);

/* Create DIR (and its parents) and a new event file in it named
 * events.out.tfevents.<seconds>.<host>.<microseconds>.<pid>, so that the files
 * of successive runs sort in the order they were started (TensorBoard reads a
 * directory's files in name order).  Write the file_version record and a
 * SessionLog START at start_step, which makes TensorBoard drop what earlier
 * files hold from that step on: a resumed run redoes the steps a killed run
 * logged after its last saved state. */
int  tb_open(TbWriter *w, const char *dir, int64_t start_step, Error *e);
/* One Event: step, wall_time (Unix seconds) and n scalars tags[i] = values[i]. */
int  tb_scalars(TbWriter *w, int64_t step, double wall_time, const char *const *tags, const float *values, int n,
                Error *e);
/* Close the file (a closed or never-opened writer is fine). */
int  tb_close(TbWriter *w, Error *e);
#endif
