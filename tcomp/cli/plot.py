"""A PNG line plot of best-so-far GFLOP/s against trials, written with the standard library only.

tcomp draws this one chart itself (pixels, a 5x7 bitmap font, zlib for the PNG stream) rather than depend on
matplotlib, which is large and would be needed by ``tcomp tune`` alone. ``plot_curves(path, curves)`` draws one
coloured line per task with axes, ticks, labels and a legend.
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from collections.abc import Sequence

Color = tuple[int, int, int]

PALETTE: tuple[Color, ...] = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                              (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))

# 5x7 glyphs, one 5-bit row per entry (bit 4 is the leftmost pixel)
_FONT: dict[str, tuple[int, ...]] = {
    "0": (0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E), "1": (0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E),
    "2": (0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F), "3": (0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E),
    "4": (0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02), "5": (0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E),
    "6": (0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E), "7": (0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08),
    "8": (0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E), "9": (0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C),
    "A": (0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11), "B": (0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E),
    "C": (0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E), "D": (0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C),
    "E": (0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F), "F": (0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10),
    "G": (0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F), "H": (0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11),
    "I": (0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E), "J": (0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C),
    "K": (0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11), "L": (0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F),
    "M": (0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11), "N": (0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11),
    "O": (0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E), "P": (0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10),
    "Q": (0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D), "R": (0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11),
    "S": (0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E), "T": (0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04),
    "U": (0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E), "V": (0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04),
    "W": (0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A), "X": (0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11),
    "Y": (0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04), "Z": (0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F),
    ".": (0, 0, 0, 0, 0, 0x0C, 0x0C), ",": (0, 0, 0, 0, 0x0C, 0x04, 0x08), ":": (0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0),
    "/": (0, 0x01, 0x02, 0x04, 0x08, 0x10, 0), "-": (0, 0, 0, 0x1F, 0, 0, 0), "+": (0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0),
    "(": (0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02), ")": (0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08),
    "[": (0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E), "]": (0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E),
    "%": (0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03), "=": (0, 0, 0x1F, 0, 0x1F, 0, 0),
    "_": (0, 0, 0, 0, 0, 0, 0x1F), "x": (0, 0, 0x11, 0x0A, 0x04, 0x0A, 0x11), " ": (0, 0, 0, 0, 0, 0, 0),
}


class Canvas:
    """An RGB image with the few drawing operations a line chart needs."""

    def __init__(self, width: int, height: int, background: Color = (255, 255, 255)) -> None:
        self.width = width
        self.height = height
        self.pixels = bytearray(bytes(background) * (width * height))

    def set(self, x: int, y: int, color: Color) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            offset = 3 * (y * self.width + x)
            self.pixels[offset: offset + 3] = bytes(color)

    def line(self, x0: int, y0: int, x1: int, y1: int, color: Color, thickness: int = 1) -> None:
        """Bresenham's line, ``thickness`` pixels wide."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        error = dx + dy
        while True:
            for t in range(thickness):
                self.set(x0, y0 + t, color)
                self.set(x0 + t, y0, color)
            if x0 == x1 and y0 == y1:
                return
            doubled = 2 * error
            if doubled >= dy:
                error += dy
                x0 += sx
            if doubled <= dx:
                error += dx
                y0 += sy

    def text(self, x: int, y: int, text: str, color: Color = (0, 0, 0), scale: int = 1) -> None:
        """Draw ``text`` with its top-left corner at (x, y); letters are drawn upper-case (except the x of 64x64)."""
        for k, char in enumerate(text):
            times = char == "x" and k > 0 and text[k - 1].isdigit()  # "64x64" keeps a small x
            glyph = _FONT.get("x" if times else char.upper(), _FONT[" "])
            for row, bits in enumerate(glyph):
                for col in range(5):
                    if bits & (0x10 >> col):
                        for sy in range(scale):
                            for sx in range(scale):
                                self.set(x + col * scale + sx, y + row * scale + sy, color)
            x += 6 * scale

    def to_png(self) -> bytes:
        rows = b"".join(b"\x00" + bytes(self.pixels[3 * self.width * y: 3 * self.width * (y + 1)])
                        for y in range(self.height))
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows, 9)) + \
            _chunk(b"IEND", b"")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def text_width(text: str, scale: int = 1) -> int:
    return 6 * scale * len(text)


def _nice_step(span: float, ticks: int = 5) -> float:
    raw = span / max(1, ticks)
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def _label(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == 0 else f"{value:.2g}"


def plot_curves(path: str | os.PathLike[str], curves: Sequence[tuple[str, Sequence[float]]],
                title: str = "best GFLOP/s vs trials", width: int = 720, height: int = 420) -> None:
    """Write a PNG with one line per ``(label, values)``; ``values[k]`` is the y value after trial ``k + 1``."""
    canvas = Canvas(width, height)
    left, right, top, bottom = 70, 20, 40, 50
    plot_w, plot_h = width - left - right, height - top - bottom
    n_max = max((len(v) for _, v in curves), default=1) or 1
    y_max = max((max(v) for _, v in curves if len(v)), default=1.0) or 1.0
    y_step = _nice_step(y_max)
    y_top = y_step * math.ceil(y_max / y_step)
    x_step = max(1, int(_nice_step(n_max)))

    def px(trial: float) -> int:
        return left + round(plot_w * (trial - 1) / max(1, n_max - 1))

    def py(value: float) -> int:
        return top + plot_h - round(plot_h * value / y_top)

    grey, black = (220, 220, 220), (0, 0, 0)
    value = 0.0
    while value <= y_top + 1e-9:
        canvas.line(left, py(value), left + plot_w, py(value), grey)
        label = _label(value)
        canvas.text(left - 6 - text_width(label), py(value) - 3, label)
        value += y_step
    for tick in [1] + list(range(x_step, n_max + 1, x_step)):
        canvas.line(px(tick), top + plot_h, px(tick), top + plot_h + 4, black)
        canvas.text(px(tick) - text_width(str(tick)) // 2, top + plot_h + 8, str(tick))
    canvas.line(left, top, left, top + plot_h, black)
    canvas.line(left, top + plot_h, left + plot_w, top + plot_h, black)
    canvas.text((width - text_width(title, 2)) // 2, 10, title, scale=2)
    canvas.text(left + (plot_w - text_width("trials")) // 2, height - 18, "trials")
    canvas.text(4, top - 14, "GFLOP/s")
    for k, (label, values) in enumerate(curves):
        color = PALETTE[k % len(PALETTE)]
        points = [(px(i + 1), py(v)) for i, v in enumerate(values)]
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            canvas.line(x0, y0, x1, y1, color, thickness=2)
        if len(points) == 1:
            canvas.line(points[0][0], points[0][1], points[0][0] + 2, points[0][1], color, thickness=2)
        legend_y = top + 8 + 12 * k
        canvas.line(left + plot_w - 180, legend_y + 3, left + plot_w - 164, legend_y + 3, color, thickness=2)
        canvas.text(left + plot_w - 158, legend_y, label[:26])
    with open(path, "wb") as handle:
        handle.write(canvas.to_png())
