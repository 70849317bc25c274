/* PNG = signature, IHDR, IDAT (the zlib stream of the filtered scanlines), IEND; each chunk with
   its CRC-32. zlib does the deflate and the CRC: saec's plots are mostly flat colour, so they
   compress about 100x (stored blocks made a default run's expert_load.png 2.5 MB). */
#include "png.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fsutil.h"
#include "saec/saec.h"

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
    p[3] = (uint8_t)v;
}

static int chunk(saec_atomic_file *af, const char *type, const uint8_t *data, size_t n) {
    uint8_t head[8];
    put32(head, (uint32_t)n);
    memcpy(head + 4, type, 4);
    uLong crc = crc32(0L, head + 4, 4);
    if (n) crc = crc32(crc, data, (uInt)n);
    uint8_t tail[4];
    put32(tail, (uint32_t)crc);
    SAEC_TRY(saec_atomic_write(af, head, 8));
    if (n) SAEC_TRY(saec_atomic_write(af, data, n));
    return saec_atomic_write(af, tail, 4);
}

int saec_png_write_rgb(const char *path, const uint8_t *rgb, int64_t width, int64_t height) {
    if (width < 1 || height < 1 || width > (1 << 24) || height > (1 << 24))
        return saec_fail(SAEC_ERR_OTHER, NULL, "internal: PNG size %lldx%lld", (long long)width,
                         (long long)height);
    const size_t row = (size_t)width * 3 + 1; /* filter byte 0 (none) + RGB */
    const size_t raw_n = row * (size_t)height;
    if (raw_n > 0x7fffffffu) /* one IDAT chunk: PNG lengths are below 2^31 */
        return saec_fail(SAEC_ERR_OTHER, "the image is too large for saec's PNG writer",
                         "cannot write '%s': %lldx%lld pixels", path, (long long)width,
                         (long long)height);
    uLongf zlen = compressBound((uLong)raw_n);
    uint8_t *raw = malloc(raw_n), *z = malloc(zlen); /* [height, row] scanlines; the stream */
    if (!raw || !z) {
        free(raw), free(z);
        return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory writing '%s'", path);
    }
    for (int64_t y = 0; y < height; y++) {
        raw[(size_t)y * row] = 0;
        memcpy(raw + (size_t)y * row + 1, rgb + (size_t)y * (size_t)width * 3, row - 1);
    }
    const int zrc = compress2(z, &zlen, raw, (uLong)raw_n, 6);
    free(raw);
    if (zrc != Z_OK) {
        free(z);
        return saec_fail(SAEC_ERR_OTHER, NULL, "cannot write '%s': zlib error %d", path, zrc);
    }

    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    uint8_t ihdr[13];
    put32(ihdr, (uint32_t)width), put32(ihdr + 4, (uint32_t)height);
    ihdr[8] = 8, ihdr[9] = 2, ihdr[10] = 0, ihdr[11] = 0, ihdr[12] = 0; /* 8-bit RGB */
    saec_atomic_file af;
    int rc = saec_atomic_open(&af, path);
    if (rc != SAEC_OK) {
        free(z);
        return rc;
    }
    rc = saec_atomic_write(&af, sig, 8);
    if (rc == SAEC_OK) rc = chunk(&af, "IHDR", ihdr, sizeof ihdr);
    if (rc == SAEC_OK) rc = chunk(&af, "IDAT", z, (size_t)zlen);
    if (rc == SAEC_OK) rc = chunk(&af, "IEND", NULL, 0);
    if (rc == SAEC_OK)
        rc = saec_atomic_commit(&af);
    else
        saec_atomic_abort(&af);
    free(z);
    return rc;
}
