/* A minimal PNG writer (8-bit RGB, no filtering, deflated by zlib): enough for the charts and
   heat maps saec draws, without a libpng dependency. Written atomically. */
#ifndef SAEC_PNG_H
#define SAEC_PNG_H

#include <stdint.h>

/* rgb [height, width, 3] bytes. */
int saec_png_write_rgb(const char *path, const uint8_t *rgb, int64_t width, int64_t height);

#endif
