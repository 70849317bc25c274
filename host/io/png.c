/* PNG = signature, IHDR, IDAT (a zlib stream of stored deflate blocks of the filtered
   scanlines), IEND; each chunk with its CRC-32 (ISO 3309), the zlib stream with its Adler-32. */
#include "png.h"

#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "saec/saec.h"

static uint32_t crc_table[256];

static void crc_init(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
}

static uint32_t crc_update(uint32_t crc, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return crc;
}

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
    p[3] = (uint8_t)v;
}

static int chunk(saec_atomic_file *af, const char *type, const uint8_t *data, size_t n) {
    uint8_t head[8];
    put32(head, (uint32_t)n);
    memcpy(head + 4, type, 4);
    uint32_t crc = crc_update(0xffffffffu, head + 4, 4);
    crc = crc_update(crc, data, n) ^ 0xffffffffu;
    uint8_t tail[4];
    put32(tail, crc);
    SAEC_TRY(saec_atomic_write(af, head, 8));
    if (n) SAEC_TRY(saec_atomic_write(af, data, n));
    return saec_atomic_write(af, tail, 4);
}

int saec_png_write_rgb(const char *path, const uint8_t *rgb, int64_t width, int64_t height) {
    if (width < 1 || height < 1 || width > (1 << 24) || height > (1 << 24))
        return saec_fail(SAEC_ERR_OTHER, NULL, "internal: PNG size %lldx%lld", (long long)width,
                         (long long)height);
    crc_init();
    const size_t row = (size_t)width * 3 + 1; /* filter byte 0 (none) + RGB */
    const size_t raw = row * (size_t)height;
    const size_t blocks = (raw + 65534) / 65535;
    const size_t zlen = 2 + raw + 5 * blocks + 4;
    if (zlen > 0x7fffffffu) /* one IDAT chunk: PNG lengths are below 2^31 */
        return saec_fail(SAEC_ERR_OTHER, "the image is too large for saec's PNG writer",
                         "cannot write '%s': %lldx%lld pixels", path, (long long)width,
                         (long long)height);
    uint8_t *z = malloc(zlen);
    if (!z) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory writing '%s'", path);
    size_t o = 0;
    z[o++] = 0x78, z[o++] = 0x01; /* zlib header: deflate, 32K window, no dictionary */
    uint32_t a = 1, b = 0;        /* Adler-32 of the uncompressed bytes */
    size_t done = 0;
    for (size_t k = 0; k < blocks; k++) {
        const size_t len = raw - done < 65535 ? raw - done : 65535;
        z[o++] = k + 1 == blocks; /* BFINAL, BTYPE 00 (stored) */
        z[o++] = (uint8_t)(len & 0xff), z[o++] = (uint8_t)(len >> 8);
        z[o++] = (uint8_t)(~len & 0xff), z[o++] = (uint8_t)((~len >> 8) & 0xff);
        for (size_t i = 0; i < len; i++, done++) {
            const size_t y = done / row, x = done % row;
            const uint8_t v = x == 0 ? 0 : rgb[y * (size_t)width * 3 + (x - 1)];
            z[o++] = v;
            a = (a + v) % 65521u, b = (b + a) % 65521u;
        }
    }
    put32(z + o, (b << 16) | a);
    o += 4;

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
    if (rc == SAEC_OK) rc = chunk(&af, "IDAT", z, o);
    if (rc == SAEC_OK) rc = chunk(&af, "IEND", NULL, 0);
    if (rc == SAEC_OK)
        rc = saec_atomic_commit(&af);
    else
        saec_atomic_abort(&af);
    free(z);
    return rc;
}
