/* The charts' text face: a 5×7 bitmap font for printable ASCII (32..126). */
#ifndef SAEC_PLOT_FONT_H
#define SAEC_PLOT_FONT_H

enum { PLOT_FONT_W = 5, PLOT_FONT_H = 7, PLOT_FONT_FIRST = 32, PLOT_FONT_LAST = 126 };

/* The glyph of `ch`: PLOT_FONT_H rows of PLOT_FONT_W characters, '#' set and '.' clear, top row
   first; a character outside 32..126 draws as '?'. */
typedef char plot_glyph_row[PLOT_FONT_W + 1];
const plot_glyph_row *plot_font_glyph(int ch);

#endif
