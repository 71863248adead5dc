"""Finding the digits in a photo: an ink map, clean-up, and one box per digit, left to right.

A photo is a scene that contains digits: paper (plain, ruled, squared, coloured, a sticky note) under
uneven light, often with the desk around it. `find_digits` turns it into one ink crop per digit:

1. Work at about 800 pixels (`WORK_SIZE`); a large JPEG is decoded at that size to begin with.
2. Ink map. The paper's local colour is estimated per channel on a quarter-size copy, by a median
   over a window much wider than any stroke (and a morphological closing where thick writing fills
   half the window); ink is how far a pixel falls below it, the largest over R, G and B, so blue ink
   on yellow paper counts as much as black on white. Shadows, gradients and vignetting are part of
   the estimated paper, so they cancel. Light chalk or marker on a dark board is the same with the
   image inverted: the middle of the picture is dark, holds no sheet of paper, and its writing is
   lighter than its surface (paper in dim light is as dark, but its ink is darker still).
   The window is a sixth of the picture; a sheet smaller than that (a sticky note or a page seen from
   afar, on a darker desk) takes the desk into its estimate, so predict.read looks again with a window
   half as wide when the first look is not read surely.
3. Threshold with hysteresis, relative to the map's own noise (paper grain, JPEG blocks) and to the
   picture's strongest ink; ink darker than DARK always counts (the grain measured where ink covers
   much of the paper is swollen by the ink's own texture). When that finds no digit, or faint ink
   lies level with the digits it found (a number's digits written with varying pressure), a second
   look takes anything that stands out from the paper's grain (pencil, a thin pen far away); what it
   finds is read like the rest, and only a confident reading is claimed. If that is not read either,
   predict.read's last look takes the ink that is also darker than the paper just around it (a
   closing NEAR pixels wide): beside a shadow's sharp edge the wide window's paper is wrong, the
   shadow's dark side is ink and its grain looks several times as coarse.
4. Remove what people draw around their digits: a closed loop holding them (a form's box, a circled
   answer) goes first. Then remove long straight lines (rulings, grid squares, margins, page and note
   edges) found by the probabilistic Hough transform along their middle, then bridge the strokes
   that crossed them. A line is as thin as a pen's, or a little thicker when it is one of a family
   of parallel lines (a ruling photographed close): a lone thick band is a stroke or a shadow. A
   lone straight stroke (no line parallel to it, not running across the picture) may be a big "1":
   when nothing else is found, the marks are found again with it kept.
   Last, a shorter line drawn under a number goes, alone or where it touches the digits.
5. Connected components -> marks; specks, shapes that sit on a brightness edge of the surface (the
   border of a page or a sticky note, a shadow's edge), thin straight marks with another surface on
   each side (a note's dark border on a desk) and marks on a surface much darker than the
   paper (the desk) are rejected with a reason. Marks stacked over each other are one digit (a "5"'s
   separate bar, a "4" in two strokes, a broken stroke).
6. Digits must be of a similar height on one line, no further apart than three digits' heights; a
   mark much wider than a digit is two or more touching digits and is sliced at its thinnest columns
   (predict.read joins the slices into digits). Other lines of marks as large as the digits, under or
   over the first (rows of numbers on a page), are read too, each on its own (`Found.more_lines`).
   A digit-sized mark beside a line that could not be read (cut by the picture's edge, just too
   faint, not level with the digits, or on the paper's edge and as dark as them), a line of marks
   that goes on beside the first instead of under it, or a mark left on no line of a page of several
   lines, means the lines are not all there is: the reading is unsure.

Everything is in OpenCV; `Found` keeps what a --debug picture needs.
"""

from dataclasses import dataclass, field
from functools import cached_property

import cv2
import numpy as np
from PIL import Image

WORK_SIZE = 800  # longer side the photo is analysed at
MIN_SIZE = 224  # an image under half this size is enlarged to it
NEAR = 15  # pixels: the paper just around a pixel (predict.read's last look) is a closing this wide
POOL = 4  # the paper's brightness is estimated at 1/POOL of the working size
MIN_CONTRAST = 32  # grey levels (of 255) below the paper that count as ink at the very least
INKED = 0.4  # a tile with more clear ink than this has its grain measured on its paper alone
SHARPNESS = 0.12  # a mark's edge rises by at least this part of its contrast per pixel of the photo
DRAFT_SCALE = "mnistlab.draft_scale"  # image.info: the file's pixels per pixel of the image (JPEG draft
# mode decodes a fraction of them; predict enlarges a photo cropped small, and its edges are softer)
MAX_MARKS = 300  # marks judged at most (the largest), so that a busy scene stays fast
MIN_HEIGHT = 0.018  # of the working image's shorter side: smaller marks are specks
FEW_COMPONENTS = 8  # up to this many (with the background), components' stats are measured one by one
FRAGMENT = 0.25  # a piece at a slice's cut with less than this part of the largest piece's ink is its neighbour's
SPECK = 0.06  # a piece of a mark with this part of its largest piece's ink (and short) is a speck
LIGHTER = 0.35  # a number's lightest digit is at least this part as dark as its lightest clear one
PINHOLE = 0.02  # a hole in a mark narrower than this part of its height is the stroke's texture
STAIN = 0.05  # a ring whose line is thinner than this part of its size, and brown, is a cup's stain
BROKEN = 0.1  # a small mark this part of a digit's height from its ink is a broken-off piece of it
CREASE = "faint and straight: a crease or grain?"  # the reason a faint lone stroke is not read
CUP = "a thin brown ring: a cup's stain?"
PALE = "far paler than the writing: the page's other side?"
# The reasons of a mark rejected as lying on the paper's edge:
EDGES = ("across an edge of the paper", "along an edge of the paper", "between two surfaces: an edge?")
OFF_PAPER = "off the paper"  # a mark on a surface much darker than the paper: the desk
GAP = 3.0  # digits of one number lie at most this many digit heights apart (one may be missing between)
EDGE_STEP = 40  # grey levels between the surfaces on a thin mark's two sides: an edge, not a stroke
WIDE_WINDOW = 6  # the paper's colour is a median over this part of the picture's longer side...
NARROW_WINDOW = 12  # ...or this part, for a small sheet on a darker desk (predict.read looks again)
CLOSER_MARGIN = 2.0  # digits read unsure are looked at closer with this many of their heights around them...
CLOSER_PART = 0.5  # ...when that part is at most this part of the photo
NOTE_AREA = 0.03  # a note (or sheet) lying whole in a photo fills at least this part of it (note_corners)
SHEET_AREA = 0.6  # a sheet on a desk that fills less of the photo than this...
SHEET_BOX = 0.7  # ...and its box less than this, is looked at closer (predict.read)
LINE = 6  # pixels: a line printed on the paper is at most this thick (at WORK_SIZE)...
RULING = 9  # ...or this, when it is one of a family of parallel lines (a close-up's or a faint look's rulings)
DARK = 80  # grey levels below the paper: ink this dark is no grain, whatever the grain measured around it
BLANK_MIDDLE = 12  # grey levels: a picture's middle whose ink and chalk stand out less than this holds no writing
PHOTO = 400  # pixels: a larger picture is a photo (a drawing or a scan of one digit may fill its frame)
EVEN = 3  # grey levels: a drawing's or a scan's border lies this close to its median (a photo's paper does not)


@dataclass(frozen=True)
class Contrast:
    """How far (of 255) below the paper ink must stand to be found: a pixel at least `pixel`, and
    `relative` of the picture's strongest ink where a mark is at its darkest; a mark's strokes mostly
    (its 90th percentile) `mark`, and `clarity` times the grain of the paper under it. A lone straight
    stroke (a "1", or a crease, the grain of a desk) is read only if it stands out as clearly as the
    first look needs (CLEAR's mark and clarity), and only if `straight` (else it is CREASE)."""

    pixel: float
    mark: float
    clarity: float
    relative: float
    straight: bool = True


CLEAR = Contrast(pixel=MIN_CONTRAST, mark=40, clarity=8, relative=0.35)  # the first look
# The second look, when the first finds nothing or sees faint ink beside the digits it found: faint
# writing (pencil, a thin pen far away, a light hand) judged by the paper's grain alone. What it finds
# must still be read with confidence.
FAINT = Contrast(pixel=14, mark=18, clarity=5, relative=0.0)
# predict.read's last look, against the paper just around each pixel (near_ink): as faint, but its
# grain is measured lower near an edge, so a lone straight stroke is never clear enough to be a "1"
# (a grid's line, a desk's grain beside the paper).
LAST = Contrast(pixel=14, mark=18, clarity=5, relative=0.0, straight=False)


@dataclass
class Mark:
    """A candidate digit: its box (x, y, w, h) in working pixels and the component labels it covers."""

    box: tuple[int, int, int, int]
    labels: list[int]
    reason: str | None = None  # why it was rejected, or None
    strength: float = 0.0  # how far its ink stands out from the paper (0-255), its strongest part's
    clarity: float = 0.0  # its strength over the grain of the paper under it, its clearest part's
    ellipse: tuple | None = None  # a cup's ring (CUP): the ellipse it lies along

    @property
    def x(self):
        return self.box[0]

    @property
    def h(self):
        return self.box[3]


@dataclass
class Found:
    """What find_digits saw: the working image, its ink map and mask, the digits' ink crops (float,
    white on black) with their boxes in the original image's pixels, and the marks it rejected."""

    scale: float  # original pixels per working pixel
    rgb: np.ndarray  # (H, W, 3) uint8 working image
    ink: np.ndarray  # (H, W) uint8 ink strength
    mask: np.ndarray  # (H, W) bool ink after clean-up
    labels: np.ndarray  # (H, W) int32 connected components of the mask
    lines: list = field(default_factory=list)  # the straight lines removed, (x1, y1, x2, y2)
    digits: list[Mark] = field(default_factory=list)  # the line of digits with the most writing
    more_lines: list[list[Mark]] = field(default_factory=list)  # other lines of digits as large, each left to right
    rejected: list[Mark] = field(default_factory=list)
    runs_off: bool = False  # a digit-sized mark next to the line's end is cut by the picture's edge
    faint_digit: bool = False  # a digit-sized mark beside the line's digits was too faint to read
    off_line: bool = False  # a digit-sized mark beside the line's digits was not level with them
    other_line: bool = False  # a mark as large as the digits, on no line, was not read (see _more_lines)
    on_edge: bool = False  # a digit-sized mark beside the line's digits lay on the paper's edge
    off_paper: bool = False  # a digit-sized mark beside the line's digits lay on a surface as dark as a desk
    faint: bool = False  # found by the second look alone: nothing stood out clearly
    paper: np.ndarray | None = None  # a photo's paper colour (RGB) at 1/POOL of the working size
    colour: np.ndarray | None = None  # a photo's ink per colour channel (ink_map's), for `near_look`
    noise: np.ndarray | None = None  # and the paper's grain, on the same scale
    sharpness: float = SHARPNESS  # the least rise of a stroke's edge (less for a photo enlarged)

    @property
    def photo(self) -> bool:
        return max(self.rgb.shape[:2]) > PHOTO

    @property
    def whole(self) -> bool:
        """Whether the line of digits found is all there is to read."""
        return not (self.runs_off or self.faint_digit or self.off_line or self.other_line or self.on_edge
                    or self.off_paper)

    @cached_property  # read by every unit's crop
    def tilt(self) -> float:
        """The angle (degrees, counter-clockwise as OpenCV turns) that sets the paper level: the median
        direction of the straight lines removed (rulings, a grid, the paper's edges), weighted by their
        length and folded to within 45 degrees of level. Writing follows its paper. Without lines (plain
        paper, a board) a line of at least three digits whose middles lie straight gives its own slope
        (a phone held rolled); otherwise 0."""
        if not self.lines:
            return self._slope_of_digits()
        x1, y1, x2, y2 = np.array(self.lines, np.float64).T
        angle = (np.degrees(np.arctan2(y2 - y1, x2 - x1)) + 45) % 90 - 45
        order = np.argsort(angle)
        weight = np.hypot(x2 - x1, y2 - y1)[order].cumsum()
        return float(angle[order][np.searchsorted(weight, weight[-1] / 2)])

    def _slope_of_digits(self) -> float:
        """The angle of the straight line through the middles of the digits (at least three, which lie
        within a fifth of their height of it), or 0."""
        if len(self.digits) < 3:
            return 0.0
        x, y, w, h = np.array([d.box for d in self.digits], np.float64).T
        cx, cy = x + w / 2, y + h / 2
        slope, level = np.polyfit(cx, cy, 1)
        if np.abs(cy - (slope * cx + level)).max() > 0.2 * np.median(h):
            return 0.0
        return float(np.degrees(np.arctan(slope)))

    def crop(self, mark: Mark, box=None) -> np.ndarray:
        """The ink (float32, white on black) of `mark`'s components inside `box` (default: its own),
        without its specks: a grid's dots or grain that were joined to the digit's strokes."""
        x, y, w, h = box or mark.box
        part = self.labels[y:y + h, x:x + w]
        labels = mark.labels
        if len(labels) > 1:
            pieces = [np.nonzero(part == label) for label in labels]
            largest = max(len(ys) for ys, _ in pieces)
            labels = [label for label, (ys, xs) in zip(labels, pieces) if len(ys) >= SPECK * largest
                      or (len(ys) and max(np.ptp(ys), np.ptp(xs)) >= 4 * SPECK * mark.h)]
        own = part == labels[0] if len(labels) == 1 else np.isin(part, labels)
        own = self._without_cut_fragments(own, x, y, labels)
        own = cv2.dilate(own.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)  # keep the soft edges
        return np.where(own, self.ink[y:y + h, x:x + w], 0).astype(np.float32)

    def _without_cut_fragments(self, own: np.ndarray, x: int, y: int, labels: list[int]) -> np.ndarray:
        """`own` without the small pieces at a side where its ink goes on beyond the box (a slice of
        touching digits): the ends of the neighbour's strokes, cut off by the slice."""
        h, w = own.shape
        cut = [side for side, col, beyond in ((0, 0, x - 1), (w - 1, w - 1, x + w))
               if 0 <= beyond < self.labels.shape[1]
               and (own[:, col] & np.isin(self.labels[y:y + h, beyond], labels)).any()]
        if not cut:
            return own
        n, pieces, stats, _ = cv2.connectedComponentsWithStats(own.view(np.uint8), connectivity=8)
        if n <= 2:
            return own
        areas = stats[1:, cv2.CC_STAT_AREA]
        left, right = stats[1:, cv2.CC_STAT_LEFT], stats[1:, cv2.CC_STAT_LEFT] + stats[1:, cv2.CC_STAT_WIDTH] - 1
        at_cut = np.zeros(n - 1, bool)
        for side in cut:
            at_cut |= (left == side) | (right == side)
        fragment = at_cut & (areas < FRAGMENT * areas.max())
        return own & ~np.isin(pieces, 1 + np.nonzero(fragment)[0]) if fragment.any() else own

    def original_box(self, box) -> list[int]:
        x, y, w, h = box
        s = self.scale
        return [round(x * s), round(y * s), max(1, round(w * s)), max(1, round(h * s))]


def working_image(image: Image.Image) -> tuple[np.ndarray, float]:
    """RGB uint8 at most WORK_SIZE on its longer side (and a tiny image enlarged), and the original
    pixels per working pixel."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgb = opaque(np.asarray(image if image.mode == "RGBA" else image.convert("RGBA")))
    else:
        rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    if max(image.size) < MIN_SIZE // 2:  # a small image (MNIST's own 28x28): enlarge it to have room to work
        scale = max(image.size) / MIN_SIZE
        size = (max(1, round(image.width / scale)), max(1, round(image.height / scale)))
        return cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC), scale
    scale = max(image.size) / WORK_SIZE
    if scale <= 1:
        return rgb, 1.0
    size = (max(1, round(image.width / scale)), max(1, round(image.height / scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), scale


def opaque(rgba: np.ndarray) -> np.ndarray:
    """RGB of an RGBA image: its colours where it is opaque (the drawing page's canvas, in a fraction
    of PIL's time), and where it is transparent (a drawing exported without a background) a ground
    that the visible strokes stand out on: white under dark strokes, black under light ones."""
    rgb = cv2.cvtColor(rgba, cv2.COLOR_RGBA2RGB)
    alpha = cv2.extractChannel(rgba, 3)
    if cv2.minMaxLoc(alpha)[0] == 255:
        return rgb
    weight = alpha.astype(np.float32)[..., None] / 255
    seen = float((brightest(rgb) * weight[..., 0]).sum() / max(float(weight.sum()), 1e-6))
    ground = 0.0 if seen > 127 else 255.0
    return (rgb * weight + ground * (1 - weight)).round().astype(np.uint8)


def paper(rgb: np.ndarray, window: int = WIDE_WINDOW) -> np.ndarray:
    """The surface's colour without the writing, at 1/POOL of the size: a median over a window much
    wider than any stroke (1/`window` of the image's longer side), in which the ink is a minority
    whether it is darker or, in some colour channel, lighter than the paper (blue ink on yellow
    paper), taken twice: the second time without the ink the first one found. The border is
    replicated, so that light falling off towards the frame (vignetting) is followed."""
    pool = POOL if min(rgb.shape[:2]) >= 8 * POOL else 1
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (max(1, w // pool), max(1, h // pool)), interpolation=cv2.INTER_AREA)
    k = min(255, max(3, round(max(small.shape[:2]) / window)) | 1)

    def framed(a):  # the border replicated, so that light falling off towards the frame is followed
        return cv2.copyMakeBorder(a, k, k, k, k, cv2.BORDER_REPLICATE)

    small_framed = framed(small)
    estimate = cv2.medianBlur(small_framed, k)[k:-k, k:-k]
    # Writing so big and thick that it fills half a window (a close-up of a digit) makes the median
    # the ink's colour. There the paper is a morphological closing, which removes any dark stroke
    # narrower than the window, however much of it there is.
    closed = cv2.morphologyEx(small_framed, cv2.MORPH_CLOSE, np.ones((k, k), np.uint8))[k:-k, k:-k]
    swamped = cv2.subtract(closed, estimate).max(axis=2) > MIN_CONTRAST
    estimate = np.where(swamped[..., None], closed, estimate) if swamped.any() else estimate
    # Big, thick writing (a marker) can fill much of a window and tint the estimate: estimate again
    # with the clearly inked pixels replaced by the first estimate.
    inked = cv2.subtract(estimate, small).max(axis=2) > MIN_CONTRAST
    if not inked.any():
        return estimate
    return cv2.medianBlur(framed(np.where(inked[..., None], estimate, small)), k)[k:-k, k:-k]


def uneven(rgb: np.ndarray) -> bool:
    """Whether a picture's border is uneven, as a photo's paper is (its grain, its texture, light falling
    across it): less than 0.9 of it within EVEN grey levels of its median. A drawing's background, or a
    scan's, is even; so a small picture with an uneven border is a crop of a photo."""
    # The border of the blurred picture, from strips three pixels wide (the drawing page's requests pass here).
    rows = [brightest(cv2.GaussianBlur(np.ascontiguousarray(strip), (3, 3), 0))[end]
            for strip, end in ((rgb[:3], 0), (rgb[-3:], -1))]
    cols = [brightest(cv2.GaussianBlur(np.ascontiguousarray(strip), (3, 3), 0))[:, end]
            for strip, end in ((rgb[:, :3], 0), (rgb[:, -3:], -1))]
    border = np.concatenate(rows + cols).astype(np.int16)
    return float(np.mean(np.abs(border - np.median(border)) <= EVEN)) < 0.9


def brightest(rgb: np.ndarray) -> np.ndarray:
    """The brightest channel of each pixel (OpenCV's max is several times faster than numpy's over an axis)."""
    return cv2.max(cv2.max(rgb[..., 0], rgb[..., 1]), rgb[..., 2])


def dark_board(rgb: np.ndarray) -> bool:
    """Whether the writing is light on a dark surface (chalk on a board, white on black): the middle
    of the picture is dark, the writing stands out above it rather than below, and no sheet of paper
    lies in it (a light region too broad to be strokes, such as a sticky note on a dark desk or a page
    beside the desk; not the lit wall or the wooden frame along a whole side of a board)."""
    h, w = rgb.shape[:2]
    lum = cv2.resize(brightest(rgb), (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    sh, sw = lum.shape
    if float(np.median(lum[sh // 4: sh - sh // 4, sw // 4: sw - sw // 4])) >= 100:
        return False
    # Dim light makes paper dark too; the writing tells them apart: chalk stands out above its board,
    # ink below its paper (by clearly more: a board's smudges and frame are dark too). Measured in the
    # middle of the picture at full detail (thin strokes vanish when shrunk), against the local
    # brightness (a shadow's edge is no writing). When the middle holds no writing (neither side stands
    # out by BLANK_MIDDLE: a page photographed in dim light, written along one side), the whole picture is.
    for part in (rgb[h // 4: h - h // 4: 2, w // 4: w - w // 4: 2], rgb[::2, ::2]):
        grey = brightest(part).astype(np.float32)
        k = max(3, max(grey.shape) // 8) | 1
        low, high = np.percentile(grey - cv2.blur(grey, (k, k)), (0.2, 99.8))
        if -low > 1.4 * high:
            return False
        if max(-low, high) >= BLANK_MIDDLE:
            break
    otsu, _ = cv2.threshold(lum, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    light = ((lum > max(otsu, 120)) * 255).astype(np.uint8)  # paper is light, not a paler streak of board
    k = max(3, round(max(sh, sw) / 25)) | 1  # wider than any stroke
    sheet = cv2.morphologyEx(light, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    # A light strip along a whole side of the picture (the wall beyond a board, the board's wooden frame)
    # is no sheet of paper.
    _, _, stats, _ = cv2.connectedComponentsWithStats(sheet, connectivity=8)
    _, _, bw, bh, area = stats[1:].T
    strip = ((bw >= 0.9 * sw) & (bh <= 0.25 * sh)) | ((bh >= 0.9 * sh) & (bw <= 0.25 * sw))
    return area[~strip].sum() < 0.03 * sheet.size and not small_sheets(sheet)


def small_sheets(light: np.ndarray, least: float = 0.004) -> list[tuple[int, int, int, int]]:
    """The boxes (x, y, w, h) of the small sheets in a map of a picture's light, broad regions (uint8,
    0 elsewhere), largest first: a sticky note or a card seen from afar is a rectangle (seen askew or
    in perspective, still nearly the rectangle around it), at least `least` of the picture, that lies
    wholly inside it. A lit wall beyond a board's frame or the lit part of a desk runs out of the
    picture; a lamp's glare is round."""
    h, w = light.shape
    boxes = []
    for contour in cv2.findContours(light, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]:
        x, y, bw, bh = cv2.boundingRect(contour)
        area = cv2.contourArea(contour)
        if x > 0 and y > 0 and x + bw < w and y + bh < h and area >= least * h * w:
            _, (rw, rh), _ = cv2.minAreaRect(contour)
            if area >= 0.9 * rw * rh:
                boxes.append((area, (x, y, bw, bh)))
    return [box for _, box in sorted(boxes, reverse=True)]


def ink_map(rgb: np.ndarray, photo: bool = True,
            window: int = WIDE_WINDOW) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """Ink strength (uint8, 0 = paper) per pixel; the same per colour channel (H, W, 3), for a photo;
    the noise, on the same scale (one number when it is the same everywhere); and the paper at
    1/POOL size (light writing on a dark board is measured on the inverted image).

    Ink is measured relative to the paper's own brightness, so that ink in a shadow is as dark as
    ink in the light, and in the colour channel where it stands out most. In a photo the paper's
    colour and its grain (camera noise, JPEG blocks) are estimated locally, because light varies
    across a page and a shadow or a dark corner is noisier, relative to its brightness, than the lit
    page (the paper is estimated over 1/`window` of the picture: see `paper`). A drawing or a scan
    (not a photo) has one background: see flat_ink."""
    if not photo:
        ink, noise, small = flat_ink(rgb)
        return ink, None, noise, small
    h, w = rgb.shape[:2]
    rgb = surface(rgb)
    small = paper(rgb, window)
    # The median of a window of paper with a little ink in it sits a little above the paper: measure
    # that lift, and the grain, tile by tile, where the ink is a minority.
    lum, small_lum = brightest(rgb), brightest(small)
    lift, noise = local_noise(cv2.resize(small_lum, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.int16) - lum)
    small = cv2.subtract(small, cv2.resize(lift, small.shape[1::-1], interpolation=cv2.INTER_LINEAR)[..., None]
                         .round().clip(0, 255).astype(np.uint8).repeat(3, axis=2))
    noise = cv2.resize(noise, (w, h), interpolation=cv2.INTER_LINEAR)
    bg = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    ratio = relative_ink(bg, rgb)
    ink = brightest(ratio)
    noise = 255 * noise / np.maximum(brightest(bg), 64).astype(np.float32)  # relative, like the ink
    return ink, ratio, noise, small


def surface(rgb: np.ndarray) -> np.ndarray:
    """A photo as its ink is measured: blurred (camera grain, JPEG blocks), and inverted when the
    writing is light on a dark board."""
    rgb = cv2.GaussianBlur(rgb, (3, 3), 0)
    return 255 - rgb if dark_board(rgb) else rgb


def near_ink(rgb: np.ndarray, colour: np.ndarray, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ink_map's ink (`colour`: per channel, of the picture's `surface` `rgb`) where a
    pixel is also darker than the paper just around it (a closing NEAR pixels wide), and the grain
    measured against that paper where it is lower: predict.read's last look. A faint stroke (pencil in
    a shadow) is darker than the paper beside it; the dark side of a shadow's sharp edge, which the
    paper's estimate (a window much wider) makes ink, is not, and where such an edge crosses a tile
    its spread is no grain."""
    closed = cv2.morphologyEx(rgb, cv2.MORPH_CLOSE, np.ones((NEAR, NEAR), np.uint8))
    near = cv2.min(colour, relative_ink(closed, rgb))
    paper = brightest(closed)
    grain = cv2.resize(local_noise(paper.astype(np.int16) - brightest(rgb))[1], near.shape[1::-1],
                       interpolation=cv2.INTER_LINEAR)
    grain = 255 * grain / np.maximum(paper, 64).astype(np.float32)
    return brightest(near), near, np.minimum(noise, grain)


def relative_ink(bg: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """How far each pixel of `rgb` falls below the paper `bg` (both (H, W, 3) uint8) in each channel,
    relative to the paper's brightness there: (H, W, 3) uint8, 255 for black on any paper."""
    darker = cv2.subtract(bg, rgb)  # saturating: ink brighter than its paper is no ink
    return cv2.divide(darker, cv2.max(bg, 64), scale=255)


def flat_ink(rgb: np.ndarray) -> tuple[np.ndarray, np.float32, np.ndarray]:
    """ink_map for a drawing or a scan: one background, the colour of the blurred image's border
    (which a digit that fills the frame does not hide), and one grain, that of the border.

    With one background, a pixel's ink depends on its own blurred colour alone: each channel is
    looked up in a table of what relative_ink makes of its 256 values, which gives the same ink as
    working on the whole image at a fraction of the cost. A grey image (the drawing page's canvas,
    most scans) is blurred and looked up as one channel."""
    h, w = rgb.shape[:2]
    plane = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)  # a grey pixel's own value
    grey = cv2.norm(rgb, cv2.cvtColor(plane, cv2.COLOR_GRAY2RGB), cv2.NORM_INF) == 0
    blurred = [cv2.GaussianBlur(p, (3, 3), 0) for p in ([plane] if grey else cv2.split(rgb))]  # grain, JPEG blocks
    border = np.stack([np.concatenate([b[0], b[-1], b[:, 0], b[:, -1]]) for b in blurred], 1).astype(np.float32)
    border = np.repeat(border, 3, axis=1) if grey else border  # (pixels, 3)
    uniform = (border == border[0]).all()  # the drawing page's canvas: no grain, its median is any pixel
    colour = border[0].copy() if uniform else np.median(border, axis=0)
    # Light writing on a dark background is measured on the inverted image; but a photo of paper in dim
    # light (a small crop of one) is as dark, and its ink stands out darker from it, not lighter.
    light_on_dark = colour.max() < 128 and not _darker_writing(blurred, colour)
    if light_on_dark:
        border, colour = 255 - border, 255 - colour
    if uniform:
        grain = 0.5
    else:
        lum = border.max(axis=1)
        # The spread of the border's brightness, or (less, when light falls across it: a small crop of a
        # photo) the differences two pixels apart along it, which hold the grain but not the gradient.
        spread = float(np.median(np.abs(lum - np.median(lum))))
        steps = float(np.median(np.abs(lum[2:] - lum[:-2]))) / np.sqrt(2)
        grain = 1.4826 * min(spread, steps) + 0.5
    small = np.empty((max(1, h // POOL), max(1, w // POOL), 3), np.uint8)
    small[:] = colour.round().astype(np.uint8)

    values = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)  # (1, 256, 3)
    paper_row = np.repeat(small[:1, :1], 256, axis=1)
    table = relative_ink(paper_row, 255 - values if light_on_dark else values)  # (1, 256, 3)
    if grey:
        ink = cv2.LUT(blurred[0], brightest(table))
    else:
        inks = [cv2.LUT(b, np.ascontiguousarray(table[..., c])) for c, b in enumerate(blurred)]
        ink = cv2.max(cv2.max(inks[0], inks[1]), inks[2])
    noise = np.float32(255) * np.float32(grain) / np.float32(max(int(small[0, 0].max()), 64))
    return ink, noise, small


def _darker_writing(blurred: list[np.ndarray], colour: np.ndarray) -> bool:
    """Whether what stands out from a drawing's background `colour` (its channels' largest, against
    the images' `blurred` planes) lies clearly further below it than above it: dark ink on dim paper."""
    lum = blurred[0] if len(blurred) == 1 else cv2.max(cv2.max(blurred[0], blurred[1]), blurred[2])
    low, high = np.percentile(lum[::2, ::2], (0.5, 99.5))
    level = float(colour.max())
    return level - low > 2 * max(high - level, MIN_CONTRAST / 2)


def local_noise(deviation: np.ndarray, tiles: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """How far the paper estimate lies above the paper, and the paper's grain, as two (rows, cols)
    grids of tiles: the median of `deviation` (estimate minus image) and 1.4826 times its median
    absolute deviation in each tile. Ink, a minority of most tiles' pixels, hardly moves either; in a
    tile that is more than INKED clear ink (a close-up's thick strokes, a bold printed digit) both
    are measured on the rest, the paper, so that the ink's own spread is not taken for grain."""
    h, w = deviation.shape
    size = min(max(8, max(h, w) // tiles), h, w) // 2 * 2
    rows, cols = max(1, h // size), max(1, w // size)
    d = deviation[: rows * size: 2, : cols * size: 2].astype(np.float32)
    d = d.reshape(rows, size // 2, cols, size // 2).transpose(0, 2, 1, 3).reshape(rows, cols, -1)
    median = np.median(d, axis=2)
    mad = np.median(np.abs(d - median[..., None]), axis=2)
    share = (d > MIN_CONTRAST).mean(axis=2)
    for r, c in zip(*np.nonzero((share > INKED) & (share < 0.9))):  # mostly ink, but paper enough to measure
        paper = d[r, c][d[r, c] <= MIN_CONTRAST]
        median[r, c] = np.median(paper)
        mad[r, c] = np.median(np.abs(paper - median[r, c]))
    return median.clip(0, None), (1.4826 * mad + 0.5).astype(np.float32)


def threshold(ink: np.ndarray, noise: np.ndarray, contrast: Contrast = CLEAR) -> np.ndarray:
    """Hysteresis: pixels clearly above the local noise, connected to pixels far above it or darker
    than DARK (where ink covers much of a tile, a bold printed number over a squared page, the grain
    measured there is swollen by the ink's own texture)."""
    strong = float(np.percentile(ink[::3, ::3], 99.9)) if contrast.relative else 0.0
    high = np.maximum(np.maximum(contrast.pixel, contrast.relative * strong), np.minimum(6 * noise, DARK))
    low = np.maximum(0.75 * contrast.pixel, 3.5 * noise)
    weak = (ink >= low).astype(np.uint8)
    n, labels = cv2.connectedComponents(weak, connectivity=8)
    seeded = np.zeros(n, bool)
    seeded[labels[ink >= high]] = True
    seeded[0] = False
    return weak.astype(bool) if seeded[1:].all() else seeded[labels]  # the first: a drawing, mostly


def remove_lines(mask: np.ndarray, colour: np.ndarray, noise: np.ndarray,
                 spare_lone: bool = False) -> tuple[np.ndarray, list, bool]:
    """The mask without long straight lines (rulings, grids, margins, edges), those lines, and
    whether any of them was a lone stroke (see _lone_stroke), which `spare_lone` leaves in the mask.

    A line is found by the probabilistic Hough transform and followed across the whole picture (a
    ruling runs from edge to edge, also where a digit or the picture's edge breaks it). Along it, a
    pixel is removed only if its run of ink across the line is no longer than the line is thick and
    its ink is no stronger, in any colour channel, than the line's own (`colour`: the ink per channel):
    a stroke that crosses the line, or lies on it in another colour or a darker ink, keeps its pixels."""
    h, w = mask.shape
    m8 = mask.astype(np.uint8)
    min_len = round(0.3 * min(h, w))
    segments = cv2.HoughLinesP(m8, 1, np.pi / 180, threshold=min_len // 2, minLineLength=min_len,
                               maxLineGap=max(3, min_len // 30))
    if segments is None:
        return mask, [], False
    segments = segments.reshape(-1, 4)
    bands = [np.zeros((h, w), np.int32), np.zeros((h, w), np.int32)]  # near-horizontal, near-vertical: line index + 1
    widths = [0, 0]
    lines, lone, strengths = [], False, [np.zeros(3, np.float32)]  # strengths[0]: no line
    for x1, y1, x2, y2 in segments.tolist():
        if _lone_stroke((x1, y1, x2, y2), segments, w, h):
            lone = True
            if spare_lone:
                continue
        if _followed(x1, y1, x2, y2, w, h, lines):
            continue
        vertical = abs(y2 - y1) > abs(x2 - x1)
        # Thickness: the median, over points along the segment, of the ink across it (within 6 px).
        t = np.linspace(0, 1, 64)
        xs = np.rint(x1 + t * (x2 - x1)).astype(int).clip(0, w - 1)
        ys = np.rint(y1 + t * (y2 - y1)).astype(int).clip(0, h - 1)
        offsets = np.arange(-6, 7)
        if vertical:
            across = m8[ys[:, None], (xs[:, None] + offsets).clip(0, w - 1)]
        else:
            across = m8[(ys[:, None] + offsets).clip(0, h - 1), xs[:, None]]
        thick = median(across.sum(axis=1))
        # A wide band is a thick stroke or a shadow, unless it is one of a family of rulings (thick
        # when a page is photographed close, or when faint ink is taken with its blurred edges).
        ruling = thick > LINE and _lines_beside((x1, y1, x2, y2), segments) >= 3
        if thick < 1 or thick > (RULING if ruling else LINE):
            continue
        # A thick line may be found along either of its edges: follow it along its middle, where its
        # ink is measured, so that its other edge is the same line.
        shift = _middle(across)
        if shift:
            x1, x2, xs = (x1 + shift, x2 + shift, (xs + shift).clip(0, w - 1)) if vertical else (x1, x2, xs)
            y1, y2, ys = (y1, y2, ys) if vertical else (y1 + shift, y2 + shift, (ys + shift).clip(0, h - 1))
        if shift and _followed(x1, y1, x2, y2, w, h, lines):
            continue
        (ex1, ey1), (ex2, ey2) = _across(x1, y1, x2, y2, w, h)
        on = m8[ys, xs] > 0
        if on.sum() < 8:
            continue
        # The line's own ink per channel, and a margin for the grain: ink above it is a stroke on the line.
        strengths.append(np.percentile(colour[ys[on], xs[on]], 90, axis=0)
                         + max(24.0, 4 * median(noise[ys, xs])))
        cv2.line(bands[vertical], (ex1, ey1), (ex2, ey2), len(strengths) - 1, round(thick) + 4)
        widths[vertical] = max(widths[vertical], round(thick))
        lines.append((ex1, ey1, ex2, ey2))
    strengths = np.array(strengths, np.float32)
    cleaned = m8.copy()
    for band, width, kernel in zip(bands, widths, ((1, 0), (0, 1))):
        if width:
            k = width + 3
            runs = cv2.morphologyEx(m8, cv2.MORPH_OPEN, np.ones((k, 1) if kernel == (1, 0) else (1, k), np.uint8))
            ys, xs = np.nonzero((band > 0) & (m8 > 0) & (runs == 0))  # ink on a line, in a short run across it
            line_ink = (colour[ys, xs] <= strengths[band[ys, xs]]).all(axis=1)  # no stronger than the line
            cleaned[ys[line_ink], xs[line_ink]] = 0
    return cleaned.astype(bool), lines, lone


def _followed(x1: int, y1: int, x2: int, y2: int, w: int, h: int, lines: list) -> bool:
    """Whether the segment is another piece of one of the `lines` already followed across the picture."""
    (ex1, ey1), (ex2, ey2) = _across(x1, y1, x2, y2, w, h)
    return any(abs(ex1 - a) + abs(ey1 - b) + abs(ex2 - c) + abs(ey2 - d) <= 4 for a, b, c, d in lines)


def _middle(across: np.ndarray) -> int:
    """How far (pixels, rounded) the middle of a line's ink lies from the segment found along it:
    `across` holds the mask across the line, one row per point along it with the segment in the
    middle column; the median, over the points on the ink, of the middle of their run of ink."""
    c = across.shape[1] // 2
    rows = across[across[:, c] > 0].astype(bool)
    if len(rows) < 8:
        return 0
    # Each point's run through the middle: its ink columns connected to the middle one.
    left = np.cumprod(rows[:, c::-1], axis=1).sum(axis=1) - 1  # ink columns to the left of the middle
    right = np.cumprod(rows[:, c:], axis=1).sum(axis=1) - 1
    return round(float(np.median((right - left) / 2)))


def _lone_stroke(segment, segments: np.ndarray, w: int, h: int) -> bool:
    """Whether a straight segment is more likely a pen stroke (a "1") than a line printed on the paper:
    shorter than 0.8 of the picture across its direction, and with no other line parallel to it (rulings
    and grids come in families; a margin or a page's edge runs most of the way across)."""
    x1, y1, x2, y2 = segment
    if np.hypot(x2 - x1, y2 - y1) >= 0.8 * (w if abs(x2 - x1) >= abs(y2 - y1) else h):
        return False
    return not len(_parallel(segment, segments))


def _parallel(segment, segments: np.ndarray) -> np.ndarray:
    """The signed distances from `segment`'s line of the middles of the `segments` that run parallel
    to it (within 3 degrees) and apart from it (more than 8 pixels): its family, when it is a ruling."""
    x1, y1, x2, y2 = segment
    dx, dy = x2 - x1, y2 - y1
    length = np.hypot(dx, dy)
    others = segments.astype(np.float64)
    ox, oy = others[:, 2] - others[:, 0], others[:, 3] - others[:, 1]
    parallel = np.abs(ox * dy - oy * dx) <= np.sin(np.radians(3)) * length * np.hypot(ox, oy)
    mx, my = (others[:, 0] + others[:, 2]) / 2 - x1, (others[:, 1] + others[:, 3]) / 2 - y1
    distance = (mx * dy - my * dx) / length
    return distance[parallel & (np.abs(distance) > 8)]


def _lines_beside(segment, segments: np.ndarray) -> int:
    """How many other lines run parallel to `segment` (segments of one line lie within 8 pixels of
    each other): a ruling has many; a page's or a card's edges, one."""
    distance = np.sort(_parallel(segment, segments))
    return int(len(distance) and 1 + (np.diff(distance) > 8).sum())


def median(a: np.ndarray) -> float:
    """np.median of a small 1-D array, without its overhead (a photo has hundreds of marks)."""
    n = len(a)
    k = n // 2
    if n % 2:
        return float(np.partition(a, k)[k])
    return float(np.partition(a, (k - 1, k))[k - 1:k + 1].mean())  # the mean in np.median's precision


def _across(x1: int, y1: int, x2: int, y2: int, w: int, h: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The ends, on the picture's border, of the straight line through (x1, y1) and (x2, y2)."""
    dx, dy = x2 - x1, y2 - y1
    if abs(dx) >= abs(dy):  # closer to horizontal: from the left edge to the right
        slope = dy / dx
        return (0, round(y1 - slope * x1)), (w - 1, round(y1 + slope * (w - 1 - x1)))
    slope = dx / dy
    return (round(x1 - slope * y1), 0), (round(x1 + slope * (h - 1 - y1)), h - 1)


def on_a_line(ys: np.ndarray, xs: np.ndarray, lines: list, within: float = 2.5) -> bool:
    """Whether nearly all of a mark's pixels lie within `within` pixels of one of the straight lines
    found: a piece of a ruling or grid that the removal left behind, not a stroke."""
    if not lines:
        return False
    ends = np.asarray(lines, np.float32)  # (L, 4)
    dx, dy = ends[:, 2] - ends[:, 0], ends[:, 3] - ends[:, 1]
    norm = np.hypot(dx, dy).clip(1e-6)
    distance = np.abs(dy[:, None] * (xs[None] - ends[:, :1]) - dx[:, None] * (ys[None] - ends[:, 1:2])) / norm[:, None]
    if ((distance <= within).mean(axis=1) > 0.9).any():
        return True
    # A ruling bowed by the lens, or a grid seen in perspective, strays a few pixels from the straight
    # line found along it: a piece of it runs parallel to that line (within 2 degrees), close beside it.
    vx, vy = cv2.fitLine(np.stack([xs, ys], 1).astype(np.float32), cv2.DIST_L2, 0, 0.01, 0.01).ravel()[:2]
    beside = (np.abs(vx * dy - vy * dx) / norm <= np.sin(np.radians(2))) & (distance.min(axis=1) <= 2 * within)
    return bool(beside.any() and (np.median(distance[beside], axis=1) <= 2 * within).any())


def along_a_line(found: Found, box) -> bool:
    """Whether a thin box (x, y, w, h in the original image's pixels, three times longer than wide) lies
    along one of the straight lines that `found` took out: a piece of a ruling or grid line, which a
    closer look at a part of the photo, without the rest of the line, may take for a "1"."""
    x, y, w, h = (v / found.scale for v in box)
    if max(w, h) < 3 * min(w, h):
        return False
    along, middle = np.linspace(0, 1, 20), np.ones(20)
    xs, ys = (middle * (x + w / 2), y + h * along) if h > w else (x + w * along, middle * (y + h / 2))
    return on_a_line(ys, xs, found.lines, within=max(2.5, min(w, h)))


def continues(mask: np.ndarray, ys: np.ndarray, xs: np.ndarray, ink: np.ndarray | None = None,
              least: float = 0.0) -> bool:
    """Whether a thin straight mark (pixels ys, xs) goes on beyond its ends in `mask`, as a piece of a
    longer broken line does (the seam of a desk, a page's edge, a crease) and a "1" does not: ink lies
    along its axis over half of a mark's length past one end, or a third past both. Ink at least
    `least` strong counts too, in the mask or not (the lines removed from it, or a faint grid line
    that the threshold broke into pieces): the piece of a margin or grid line that the removal missed
    goes on along its line as strong as itself, a pen's "1" on a fainter grid line does not."""
    h, w = mask.shape
    points = np.stack([xs, ys], 1).astype(np.float32)
    vx, vy, cx, cy = cv2.fitLine(points, cv2.DIST_L2, 0, 0.01, 0.01).ravel()
    along = (xs - cx) * vx + (ys - cy) * vy
    lo, hi = float(along.min()), float(along.max())
    length = hi - lo
    covered = []
    for start, step in ((hi, 1), (lo, -1)):
        t = start + step * np.arange(3, length + 3)
        px, py = cx + t * vx, cy + t * vy
        inside = (px >= 0) & (px < w) & (py >= 0) & (py < h)
        if inside.sum() < 0.5 * len(t):
            covered.append(0.0)  # the picture ends there: no evidence either way
            continue
        hit = np.zeros(len(t), bool)
        for offset in (-2, 0, 2):  # a little to either side of the axis
            qx = np.rint(px - offset * vy).astype(int).clip(0, w - 1)
            qy = np.rint(py + offset * vx).astype(int).clip(0, h - 1)
            hit |= mask[qy, qx]
            if ink is not None:
                hit |= ink[qy, qx] >= least
        covered.append(float(hit[inside].mean()))
    return max(covered) >= 0.5 or min(covered) >= 0.3


class Sheets:
    """The surfaces of a photo (a page, a sticky note, the desk, a board), as regions of the paper
    estimate (1/POOL size) whose colour changes only gradually: a flood fill from a mark's middle,
    stopped by the sharp colour step at a sheet's edge but not by a soft shadow or a gradient."""

    STEP = 6  # grey levels per small pixel that a surface's colour may change by

    def __init__(self, bg: np.ndarray):
        self.bg = cv2.GaussianBlur(bg, (3, 3), 0)
        self.regions = np.zeros(bg.shape[:2], np.int32)  # 0: not yet filled
        # The sheets' edges: where the colour steps, within a pixel, by more than a surface's own
        # change allows and by most of the change over a wider window (a shadow's edge is a gradual
        # ramp); widened by two small pixels to cover the shadow or border that runs along an edge.
        step = cv2.morphologyEx(self.bg, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)).max(axis=2)
        ramp = cv2.morphologyEx(self.bg, cv2.MORPH_GRADIENT, np.ones((9, 9), np.uint8)).max(axis=2)
        sharp = (step > 3 * self.STEP) & (step > 0.4 * ramp)
        self.edges = cv2.dilate(sharp.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0

    def along_edge(self, ys: np.ndarray, xs: np.ndarray) -> float:
        """The part of a mark's pixels (small coordinates) that lie along a sheet's edge."""
        return float(self.edges[ys, xs].mean())

    def inside(self, ys: np.ndarray, xs: np.ndarray) -> float:
        """The part of a mark's pixels (small coordinates) on the surface under its middle pixel."""
        y, x = int(median(ys)), int(median(xs))
        if not self.regions[y, x]:
            h, w = self.regions.shape
            mask = np.zeros((h + 2, w + 2), np.uint8)
            d = (self.STEP,) * 3
            cv2.floodFill(self.bg.copy(), mask, (x, y), (0, 0, 0), d, d, 4 | cv2.FLOODFILL_MASK_ONLY | (1 << 8))
            self.regions[mask[1:-1, 1:-1] > 0] = self.regions.max() + 1
        return float((self.regions[ys, xs] == self.regions[y, x]).mean())


def _merge_stacked(marks: list[Mark]) -> list[Mark]:
    """Join marks that overlap horizontally by most of the narrower one's width and nearly touch
    vertically: the pieces of one digit (a "5"'s bar, a "4" in two strokes, a broken stroke)."""
    marks = sorted(marks, key=lambda m: m.x)
    parent = list(range(len(marks)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(marks):
        ax, ay, aw, ah = a.box
        for j in range(i + 1, len(marks)):
            bx, by, bw, bh = marks[j].box
            if bx >= ax + aw:
                break  # sorted by x: no later mark overlaps a horizontally
            overlap = min(ax + aw, bx + bw) - max(ax, bx)
            gap = max(ay, by) - min(ay + ah, by + bh)  # negative when they overlap vertically
            stacked = overlap > 0.5 * min(aw, bw) and gap < 0.35 * max(ah, bh)
            # Or the broken pieces of one narrow digit: nearly touching, together no wider than a digit.
            ux0, uy0 = min(ax, bx), min(ay, by)
            uw, uh = max(ax + aw, bx + bw) - ux0, max(ay + ah, by + bh) - uy0
            near = max(bx - (ax + aw), gap) < 0.1 * max(ah, bh) and uw <= 0.8 * uh
            if stacked or near:
                parent[root(j)] = root(i)
    groups = {}
    for i, m in enumerate(marks):
        groups.setdefault(root(i), []).append(m)
    return [join(group) for group in groups.values()]


def join(marks: list[Mark]) -> Mark:
    """One mark of several: their boxes' union and all their components."""
    x0 = min(m.box[0] for m in marks)
    y0 = min(m.box[1] for m in marks)
    x1 = max(m.box[0] + m.box[2] for m in marks)
    y1 = max(m.box[1] + m.box[3] for m in marks)
    return Mark((x0, y0, x1 - x0, y1 - y0), [label for m in marks for label in m.labels],
                strength=max(m.strength for m in marks), clarity=max(m.clarity for m in marks))


def components(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """cv2.connectedComponentsWithStats(mask, connectivity=8) without its centroids, worked out over
    the mask's bounding box only: a drawing's ink covers a part of its frame. The box starts at even
    coordinates, so that OpenCV's labelling, which scans 2x2 blocks, numbers the components as it
    does over the whole frame. The stats of the background (row 0) are those of the box. OpenCV's
    stats cost some 5 ns a pixel (more than the labelling): for a few components (a drawing), each
    one's box and area are measured alone instead, the same numbers in a tenth of the time."""
    h, w = mask.shape
    x, y, bw, bh = cv2.boundingRect(mask.view(np.uint8))
    x0, y0 = x - x % 2, y - y % 2
    labels = np.zeros((h, w), np.int32)
    if bw == 0:
        return 1, labels, np.array([[0, 0, w, h, h * w]], np.int32)
    part = mask[y0:y + bh, x0:x + bw].view(np.uint8)
    n, box_labels = cv2.connectedComponents(part, connectivity=8)
    if n <= FEW_COMPONENTS:  # a drawing: each label's box and area alone cost a fraction of OpenCV's stats
        stats = np.array([[*cv2.boundingRect(own), cv2.countNonZero(own)]
                          for own in ((box_labels == i).view(np.uint8) for i in range(n))], np.int32)
    else:
        n, box_labels, stats, _ = cv2.connectedComponentsWithStats(part, connectivity=8)
    labels[y0:y + bh, x0:x + bw] = box_labels
    stats[:, 0] += x0
    stats[:, 1] += y0
    return n, labels, stats


def _ink_levels(labels: np.ndarray, stats: np.ndarray, chosen: np.ndarray, ink: np.ndarray,
                noise) -> tuple[np.ndarray, np.ndarray]:
    """Per component (indexed by label, `stats` as `components` gives them; only the `chosen` ones are
    measured): the 90th percentile of its ink, and the mean noise under it. One sort of all their
    pixels by (label, ink), instead of a percentile per component: a squared page has hundreds of
    components. Only the box around the chosen ones is looked at: a drawing's digit fills part of it."""
    n = len(chosen)
    chosen = chosen.copy()
    chosen[0] = False  # the background
    if chosen.any():
        x, y, w, h = stats[chosen, :4].T
        box = np.s_[y.min():(y + h).max(), x.min():(x + w).max()]
        labels, ink, noise = labels[box], ink[box], noise[box] if np.ndim(noise) else noise
    inked = labels > 0 if chosen[1:].all() else chosen[labels]  # the first: a drawing, mostly
    label, value = labels[inked], ink[inked]
    counts = np.where(chosen, stats[:, 4], 0)  # the chosen components' areas
    ordered = np.sort(label * 256 + value) & 255  # each component's ink, ascending, one after another
    starts = np.cumsum(counts) - counts
    strength = np.zeros(n, np.float32)
    measured = counts > 0
    strength[measured] = ordered[starts[measured] + (0.9 * (counts[measured] - 1)).astype(np.int64)]
    if np.ndim(noise):
        grain = np.bincount(label, weights=noise[inked], minlength=n) / np.maximum(counts, 1)
    else:
        grain = np.full(n, float(noise))
    return strength, grain.astype(np.float32)


def find_digits(image: Image.Image, window: int = WIDE_WINDOW) -> "Found":
    """Find the handwritten (or printed) digits in a photo or drawing, left to right, with the
    paper's colour estimated over 1/`window` of the picture."""
    rgb, scale = working_image(image)
    if min(rgb.shape[:2]) < 16:  # a strip or a dot: no room for a digit
        empty = np.zeros(rgb.shape[:2], np.uint8)
        return Found(scale, rgb, empty, empty.astype(bool), empty.astype(np.int32))
    photo = max(rgb.shape[:2]) > PHOTO
    ink, colour, noise, bg = ink_map(rgb, photo, window)
    # An edge of the photo as taken spreads over more pixels of a picture enlarged from it:
    sharpness = SHARPNESS * min(1.0, image.info.get(DRAFT_SCALE, 1.0))
    if not photo:
        return _digits_in(threshold(ink, noise), [], rgb, scale, ink, None, noise, bg, photo, CLEAR)
    found = _look(rgb, scale, ink, colour, noise, bg, CLEAR, sharpness)
    stains = [m for m in found.rejected if m.reason == CUP]
    if not found.digits:  # faint writing: look again, by the paper's grain alone (it sees all the first saw)
        found = _without_stains(_look(rgb, scale, ink, colour, noise, bg, FAINT, sharpness), stains)
        found.faint = True
        return found
    if _faint_ink_beside(found, ink, noise):
        # A number's digits may be written more lightly than the darkest of them: when the second
        # look finds the same line with more digits in it, or a faint stroke beside it that may be
        # a "1", all at least LIGHTER as dark as the lightest digit found (not the ghost of an erased
        # marker, or the grain beside a clear digit), its reading is the one to give.
        again = _without_stains(_look(rgb, scale, ink, colour, noise, bg, FAINT, sharpness), stains)
        weakest = min(d.strength for d in found.digits)
        added = [d for d in again.digits if not any(_covered(f, [d]) for f in found.digits)]
        added += [m for m in again.rejected if m.reason == CREASE and next_digit(again.digits, m)]
        if added and all(_covered(d, again.digits) for d in found.digits) \
                and all(m.strength >= LIGHTER * weakest for m in added):
            return again
    return found


def near_look(found: Found) -> Found:
    """predict.read's last look at a photo that find_digits saw as `found`: faintly, its ink also
    measured against the paper just around each pixel (see near_ink), for faint writing, a digit
    beside a shadow's sharp edge or a pen's shadow joined to the ink. It reuses `found`'s maps."""
    if found.colour is None:  # a strip or a dot, too small to hold a digit: find_digits did not look
        return found
    ink, colour, noise = near_ink(surface(found.rgb), found.colour, found.noise)
    near = _look(found.rgb, found.scale, ink, colour, noise, found.paper, LAST, found.sharpness)
    near.faint = True
    return _without_stains(near, [m for m in found.rejected if m.reason == CUP])


def _without_stains(look: Found, stains: list[Mark]) -> Found:
    """A fainter `look` without the digits that lie over a cup's ring that the clear look found (CUP):
    seen faintly, the ring is joined to the lines and grain around it, and is no longer thin or brown."""
    over = [d for d in look.digits if _covered(d, stains) or any(_covered(s, [d]) for s in stains)
            or any(s.ellipse and _along_ellipse(*_pixels(d, look.labels), s.ellipse) for s in stains)]
    for d in over:
        d.reason = CUP
    look.digits = [d for d in look.digits if d not in over]
    look.rejected += over
    return look


def _covered(mark: Mark, marks: list[Mark]) -> bool:
    """Whether most of `mark`'s box lies inside one of `marks`' boxes."""
    x, y, w, h = mark.box
    return any(max(0, min(x + w, a + c) - max(x, a)) * max(0, min(y + h, b + d) - max(y, b)) > 0.5 * w * h
               for a, b, c, d in (m.box for m in marks))


def _faint_ink_beside(found: Found, ink: np.ndarray, noise: np.ndarray) -> bool:
    """Whether faint ink (as the second look takes it) lies next to the line of digits found, level
    with them and at least 0.4 of their height: maybe a digit written more lightly than its
    neighbours, or a piece of one (the second look judges). Only a band around the line is looked at;
    a ruling or a grid's line crosses the whole band and is no digit, nor is anything wider than a digit."""
    boxes = np.array([d.box for d in found.digits])
    tall = float(np.median(boxes[:, 3]))
    x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
    x1, y1 = (boxes[:, 0] + boxes[:, 2]).max(), (boxes[:, 1] + boxes[:, 3]).max()
    h, w = ink.shape
    top, bottom = max(0, round(y0 - tall / 2)), min(h, round(y1 + tall / 2))
    left, right = max(0, round(x0 - 2 * tall)), min(w, round(x1 + 2 * tall))
    band = np.s_[top:bottom, left:right]
    mask = threshold(ink[band], noise[band] if np.ndim(noise) else noise, FAINT)
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    for x, y, bw, bh, _ in stats[1:].tolist():
        if (y == 0 and y + bh == bottom - top) or bh < 0.4 * tall or bw > 1.5 * tall:
            continue
        mark = Mark((x + left, y + top, bw, bh), [])
        near = any(max(mark.x - (d.x + d.box[2]), d.x - (mark.x + bw)) <= 1.5 * tall
                   and min(d.box[1] + d.h, y + top + bh) - max(d.box[1], y + top) > 0.3 * min(d.h, bh)
                   for d in found.digits)
        if near and not _covered(mark, found.digits):
            return True
    return False


def _look(rgb: np.ndarray, scale: float, ink: np.ndarray, colour: np.ndarray, noise: np.ndarray, bg: np.ndarray,
          contrast: Contrast, sharpness: float = SHARPNESS) -> "Found":
    """The digits of a photo whose ink stands out by `contrast`, with the lines removed."""
    mask, frames = without_frames(threshold(ink, noise, contrast), MIN_HEIGHT * min(rgb.shape[:2]))
    cleaned, lines, lone = remove_lines(mask, colour, noise)
    found = _digits_in(cleaned, lines, rgb, scale, ink, colour, noise, bg, True, contrast, sharpness)
    if lone and not found.digits:  # a big "1" is a straight line too: read it when nothing else is written
        cleaned, lines, _ = remove_lines(mask, colour, noise, spare_lone=True)
        spared = _digits_in(cleaned, lines, rgb, scale, ink, colour, noise, bg, True, contrast, sharpness)
        found = spared if spared.digits else found
    found.rejected += [Mark(box, [], reason="a frame around the digits") for box in frames]
    found.colour, found.noise = colour, noise
    return found


def without_underlines(mask: np.ndarray, labels: np.ndarray, stats: np.ndarray,
                       least: float) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """The mask (its rulings removed) without the lines drawn under (or over) a number, and their
    boxes; `labels` and `stats` are the mask's components. Only marks narrower than half the picture
    count (not rulings):
    - a line alone, at least 8 times `least` long and 8 times longer than thick (it would be joined
      with the digits above it);
    - a line that touches the digits: in a sparse mark at least 4 times `least` tall and 1.5 times
      wider than tall, a thin straight horizontal run in its top or bottom quarter, 1.2 times its
      height long and spanning most of its width, that joins two tall pieces or runs on past their
      ends. A digit's own bars are shorter than it is tall; a "3"'s bowl, wider than tall, ends in
      its sides."""
    x, y, bw, bh, area = stats.T
    narrow = (bw < 0.5 * mask.shape[1]) & (np.arange(len(stats)) > 0)
    cleaned, boxes = mask, []
    for i in np.nonzero(narrow & (bw >= 8 * least) & (bw >= 8 * bh))[0].tolist():
        cleaned = cleaned.copy() if cleaned is mask else cleaned
        box = np.s_[y[i]:y[i] + bh[i], x[i]:x[i] + bw[i]]
        cleaned[box][labels[box] == i] = False
        boxes.append(tuple(int(v) for v in stats[i, :4]))
    for i in np.nonzero(narrow & (bh >= 4 * least) & (bw >= 1.5 * bh) & (area <= 0.35 * bw * bh))[0].tolist():
        box = np.s_[y[i]:y[i] + bh[i], x[i]:x[i] + bw[i]]
        own = (labels[box] == i).view(np.uint8)
        runs = cv2.morphologyEx(own, cv2.MORPH_OPEN, np.ones((1, round(1.2 * bh[i])), np.uint8))
        runs[bh[i] // 4: bh[i] - bh[i] // 4] = 0
        cols = np.nonzero(runs.any(axis=0))[0]
        if not len(cols) or np.ptp(cols) < 0.8 * bw[i] or median(runs.sum(axis=0)[cols]) > 0.12 * bh[i]:
            continue
        line = cv2.dilate(runs, np.ones((3, 1), np.uint8)) > 0
        _, _, rest, _ = cv2.connectedComponentsWithStats((own & ~line).view(np.uint8), connectivity=8)
        rest = rest[1:]
        if not len(rest):
            continue
        joins = np.count_nonzero(rest[:, 3] >= 0.4 * bh[i]) >= 2
        past = max(rest[:, 0].min() - cols[0], cols[-1] + 1 - (rest[:, 0] + rest[:, 2]).max()) > 0.25 * bh[i]
        if joins or past:
            cleaned = cleaned.copy() if cleaned is mask else cleaned
            cleaned[box][line] = False
            rows = np.nonzero(runs.any(axis=1))[0]
            boxes.append((int(x[i] + cols[0]), int(y[i] + rows[0]), int(np.ptp(cols) + 1), int(np.ptp(rows) + 1)))
    return cleaned, boxes


def without_frames(mask: np.ndarray, least: float) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """The mask without the frames drawn around digits (a form's box, a circled answer), and their
    boxes. A frame is a thin closed loop (at most half its box), at least 4 times `least` tall and
    wide and inside the picture, whose inside (a few holes at most, where digits touch it: a grid's
    net has many) is most of its box and holds a mark at least 0.4 of its height tall, apart from it
    or reaching deep into it (a "0" holds nothing, a coffee ring specks at most). Only the loop goes,
    about as thick as it is at its inner edge: the digits that touch it stay. It goes before the
    lines are removed: a long box's sides would be taken for rulings, and its ends left as two "1"s.
    Loops are found by their contours' holes (OpenCV's two-level contour tree), which costs a
    fraction of a labelling."""
    h, w = mask.shape
    contours, tree = cv2.findContours(mask.view(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    cleaned, boxes = mask, []
    for i, contour in enumerate(contours):
        x, y, bw, bh = cv2.boundingRect(contour)
        if tree[0, i, 3] >= 0 or min(bw, bh) < 4 * least or x == 0 or y == 0 or x + bw == w or y + bh == h:
            continue  # a hole, small, or cut by the picture's edge
        holes, child = [], tree[0, i, 2]
        while child >= 0 and len(holes) <= 4:
            holes.append(contours[child])
            child = tree[0, child, 0]
        if not holes or len(holes) > 4 or sum(cv2.contourArea(c) for c in holes) < 0.4 * bw * bh:
            continue
        box = np.s_[y:y + bh, x:x + bw]
        _, labels = cv2.connectedComponents(mask[box].view(np.uint8), connectivity=8)
        own = labels == labels[contour[0, 0, 1] - y, contour[0, 0, 0] - x]
        if own.sum() > 0.5 * bw * bh:
            continue  # not a thin loop
        inside = _inside(own)
        filled = np.pad(own | inside, 1).view(np.uint8)
        depth = cv2.distanceTransform(filled, cv2.DIST_L2, 3)[1:-1, 1:-1]  # from the outside
        edge = own & cv2.dilate(inside.view(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        thick = np.percentile(depth[edge], 25)
        loop = own & (depth <= thick + 1.5)
        deep = own & (depth > max(3 * thick, 0.1 * min(bw, bh)))  # a digit that touches it, not the loop's own
        _, _, held, _ = cv2.connectedComponentsWithStats((deep | (mask[box] & inside)).view(np.uint8), connectivity=8)
        if held[1:, 3].max(initial=0) >= 0.4 * bh:  # a digit, not specks
            cleaned = cleaned.copy() if cleaned is mask else cleaned
            cleaned[box][loop] = False
            boxes.append((x, y, bw, bh))
    return cleaned, boxes


def _digits_in(mask: np.ndarray, lines: list, rgb: np.ndarray, scale: float, ink: np.ndarray, colour, noise,
               bg: np.ndarray, photo: bool, contrast: Contrast, sharpness: float = SHARPNESS) -> "Found":
    """find_digits' marks in the cleaned-up ink `mask`: judged, joined and lined up (`colour`: a photo's
    ink per colour channel, or None; `sharpness`: SHARPNESS, less for a photo enlarged)."""
    h, w = mask.shape
    n, labels, stats = components(mask)
    under = []
    if photo:
        mask, under = without_underlines(mask, labels, stats, MIN_HEIGHT * min(h, w))
        if under:
            n, labels, stats = components(mask)
    found = Found(scale, rgb, ink, mask, labels, lines, paper=bg if photo else None, sharpness=sharpness)
    found.rejected += [Mark(box, [], reason="a line under the digits") for box in under]

    if photo:
        # The surface the ink lies on: ink sits inside a sheet of paper (or a board), not across its edge.
        lum = brightest(bg)
        paper_level = float(np.percentile(lum, 90))
        pool = max(1, round(h / lum.shape[0]))
        sheets = Sheets(bg)
        # A pen's stroke has a sharp edge; a shadow's, a fold's or a blur's is soft.
        gradient = cv2.morphologyEx(ink, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))

    min_h = max(6, MIN_HEIGHT * min(h, w))
    big = (np.maximum(stats[:, 2], stats[:, 3]) >= 0.4 * min_h) & (stats[:, 4] >= 0.1 * min_h ** 2 / 4)
    big[0] = False  # the background
    if big.sum() > MAX_MARKS:  # a busy scene (a desk's grain, the second look at a textured page): the largest
        big[np.argsort(np.where(big, -stats[:, 4], 0), kind="stable")[MAX_MARKS:]] = False
    strength, grain = _ink_levels(labels, stats, big, ink, noise)
    marks = []
    for i in np.nonzero(big[1:])[0] + 1:  # specks and JPEG noise are not worth a reason
        x, y, bw, bh, area = stats[i].tolist()
        mark = Mark((x, y, bw, bh), [int(i)], strength=float(strength[i]),
                    clarity=float(strength[i] / max(grain[i], 1e-3)))
        if strength[i] < max(contrast.mark, contrast.clarity * grain[i]):
            mark.reason = "too faint"
        elif photo:  # straightness, edges and the surface under the mark
            cut = _cut(mark, h, w)
            own = labels[y:y + bh, x:x + bw] == i
            ys_own, xs_own = ys, xs = np.nonzero(own)
            ys, xs = ((ys + y) // pool).clip(0, lum.shape[0] - 1), ((xs + x) // pool).clip(0, lum.shape[1] - 1)
            rim = own & ~cv2.erode(own.view(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            if max(bw, bh) >= 3 * min(bw, bh) and on_a_line(ys_own + y, xs_own + x, lines):  # thin, straight
                mark.reason = "part of a ruling"
            elif max(bw, bh) >= 3 * min(bw, bh) and continues(mask, ys_own + y, xs_own + x, ink, 0.6 * strength[i]):
                mark.reason = "part of a longer line"
            elif rim.any() and median(gradient[y:y + bh, x:x + bw][rim]) < sharpness * max(strength[i], 1):
                mark.reason = "blurred edges: a shadow?"
            elif sheets.inside(ys, xs) < 0.9:
                mark.reason = EDGES[0]
            elif sheets.along_edge(ys, xs) > 0.6:
                mark.reason = EDGES[1]
            elif max(bw, bh) >= 3 * min(bw, bh) and two_surfaces(rgb, mark.box):
                mark.reason = EDGES[2]
            elif median(lum[ys, xs]) < 0.45 * paper_level:
                mark.reason = OFF_PAPER
            elif (bw > 0.8 * w or bh > 0.8 * h) and (cut or _holes(own) > 2):
                mark.reason = "too large"  # a close-up's digit may fill most of the picture, inside its frame
            elif cut:
                mark.reason = "cut by the picture's edge"
        if mark.reason:
            found.rejected.append(mark)
        else:
            marks.append(mark)

    judged = [m for m in found.rejected if m.labels] + marks  # every mark of this mask, judged one by one
    for m in marks:
        if along_the_grain(m, judged, labels, lines):
            m.reason = "a streak along the surface's grain"
    for m, column in zip(marks, in_a_column(marks)):  # before they are joined: a binding's holes are stacked too
        if column:
            m.reason = "one of a column of like marks: a binding?"
    found.rejected += [m for m in marks if m.reason]
    marks = _merge_stacked([m for m in marks if not m.reason])
    for m in marks:
        _, _, bw, bh = m.box
        if bh < min_h:  # every digit is at least as tall as wide, about
            m.reason = "too small"
        elif bw > 6 * bh and bh < 2 * min_h:
            m.reason = "a line, not a digit"
        elif (m.strength < CLEAR.mark or m.clarity < CLEAR.clarity or not contrast.straight) \
                and elongation(m, labels) >= 4:  # a "1", or a crease: not told apart when faint
            m.reason = CREASE
        elif _holds_marks(m, labels):
            m.reason = "marks inside its loop: a drawing?"
        elif colour is not None and (ellipse := _cup_ring(m, labels, ink, colour)):
            m.reason, m.ellipse = CUP, ellipse
    rings = [m for m in marks if m.reason == CUP]
    for m in marks:  # the rest of a ring broken in pieces
        if not m.reason and any(_along_ellipse(*_pixels(m, labels), r.ellipse) for r in rings):
            m.reason = CUP
    # In the first look, writing less than LIGHTER as dark as a mark at least about as tall is the other
    # side of the page showing through, or the ghost of wiped writing: not read beside the writing
    # itself. (A smaller dark mark, a binding's hole, says nothing of the writing's darkness; the second
    # look weighs the writing it adds against the first look's digits.)
    kept = [m for m in marks if not m.reason]
    if contrast is CLEAR and kept:
        strength, tall = np.array([m.strength for m in kept]), np.array([m.h for m in kept])
        pale = ((LIGHTER * strength[None, :] > strength[:, None]) & (tall[None, :] >= 0.8 * tall[:, None])).any(axis=1)
        for m in np.array(kept, dtype=object)[pale]:
            m.reason = PALE
    found.rejected += [m for m in marks if m.reason]
    marks = [m for m in marks if not m.reason]
    if not marks:
        return found

    # One line of digits of similar height: the line with the most writing (by the squares of its
    # marks' heights, so that a row of specks does not outweigh a digit) is the one read.
    # The line may slope (a tilted phone, writing that climbs): each mark need only be level with its
    # neighbour towards `ref`, and no further from it than GAP digit heights.
    def company(ref: Mark, pool: list[Mark] = marks) -> list[Mark]:
        line = [ref]
        similar = [m for m in pool if 0.4 * ref.h <= m.h <= 2.5 * ref.h and m is not ref]
        for side in (-1, 1):
            last = ref
            for m in sorted((m for m in similar if (m.x - ref.x) * side >= 0), key=lambda m: abs(m.x - ref.x)):
                gap = max(m.x - (last.x + last.box[2]), last.x - (m.x + m.box[2]))
                if gap > GAP * ref.h:
                    break
                if abs(m.box[1] + m.h / 2 - (last.box[1] + last.h / 2)) <= 0.75 * ref.h:
                    line.append(m)
                    last = m
        return line

    ref = max(marks, key=lambda m: sum(c.h ** 2 for c in company(m)))
    line = company(ref)
    for m in marks:
        if m not in line:
            m.reason = "smaller than the digits" if m.h < 0.4 * ref.h else "off the line of digits"
    found.rejected += [m for m in marks if m.reason]
    found.digits = sorted((m for m in marks if not m.reason), key=lambda m: m.x)
    tall = float(np.median([d.h for d in found.digits]))
    weakest = min(m.strength for m in found.digits)
    _admit_ones(found, tall, weakest)
    _join_broken(found)
    # Other lines of writing as large as the digits (more numbers above or below) are read too.
    others = [m for m in marks if m.reason == "off the line of digits" and 0.6 * tall <= m.h <= 1.6 * tall]
    found.more_lines, found.other_line = _more_lines(found.digits, others, company)
    taken = {id(m) for line in found.more_lines for m in line}
    for m in marks:
        if id(m) in taken:
            m.reason = None
    found.rejected = [m for m in found.rejected if id(m) not in taken]
    lines = [found.digits, *found.more_lines]
    found.runs_off = any(next_digit(line, m) for line in lines for m in found.rejected
                         if m.reason == "cut by the picture's edge")
    beside = [m for m in found.rejected if not any(min(d.x + d.box[2], m.x + m.box[2]) > max(d.x, m.x)
                                                    for d in found.digits)]  # not a piece of a digit read
    # A digit just too faint to read (a pencil's pressure varies), as tall as the digits beside it and
    # nearly as strong as the weakest of them; or as dark as clear ink, yet taken for grain where its
    # own texture swells the grain measured (a bold printed number over a squared page):
    faint = _merge_stacked([m for m in beside if m.reason == "too faint"])
    found.faint_digit = any(next_digit(found.digits, m) for m in faint
                            if m.strength >= 0.8 * weakest and (m.clarity >= 6 or m.strength >= DARK)
                            and m.h <= 1.5 * ref.h)
    # A faint straight stroke beside the line may be a "1" written lightly:
    found.faint_digit |= any(next_digit(found.digits, m) for m in found.rejected if m.reason == CREASE)
    # A piece of ink just above or below a digit, too faint or too small to be read alone yet about as dark
    # as the digit, may be the rest of it (a pencil's "3" whose lower bowl is light reads as a sure "2"):
    found.faint_digit |= any(rest_of(d, m) for d in found.digits for m in found.rejected
                             if m.reason in ("too faint", "smaller than the digits"))
    # A digit-sized mark just beside the line, but not level with it, may be its digits that climb
    # more steeply than the line was followed:
    # (Two lines read level with each other are one line, climbing.)
    found.off_line = any(next_digit(line, m) for line in lines for m in found.rejected
                         if m.reason == "off the line of digits") \
        or any(next_digit(a, m) for a in lines for b in lines if b is not a for m in b)
    # A digit written at the paper's very edge (a "1" along a sticky note's side, digits along a
    # shadow's sharp edge) is rejected with the edge, and one in a shadow so deep that its surface is
    # taken for the desk is "off the paper": such a mark beside the digits, as dark as they are, no
    # taller and up to four of them wide (and not one of a column of like marks: a binding's wire
    # across the edge), may be those digits. (Off the paper, a mark cut by the picture's edge is the
    # desk's own: a dark corner beyond the page.)
    def beside(reasons: tuple) -> bool:
        near = [m for m in found.rejected if m.reason in reasons
                and (m.reason != OFF_PAPER or not _cut(m, h, w))]
        return any(next_digit(line, m) for line in lines for m, column in zip(near, in_a_column(near))
                   if not column and m.box[2] <= 4 * tall and m.h <= 1.5 * tall and m.strength >= 0.75 * weakest)

    found.on_edge, found.off_paper = beside(EDGES), beside((OFF_PAPER,))
    return found


def _cut(mark: Mark, h: int, w: int) -> bool:
    """Whether `mark` touches the edge of an (h, w) picture."""
    x, y, bw, bh = mark.box
    return x == 0 or y == 0 or x + bw == w or y + bh == h


def _more_lines(line: list[Mark], others: list[Mark], company) -> tuple[list[list[Mark]], bool]:
    """The other lines of digits on a page (rows of numbers) besides `line`: among the marks `others`
    off it (as large as its digits), the line with the most writing, again and again while one of at
    least two marks is left that lies under or over a line taken (half the narrower one's width in
    common), each left to right (`company(ref, pool)`: the marks of `pool` on one line with `ref`); and
    whether the reading is then not all there is: a line of two or more is left (a number that goes on
    beside the line rather than under it: writing that climbs steeply), or a page of several lines has
    a mark left over (it may be a line of one digit; beside a single line a lone mark is a blot or a
    doodle, not read)."""
    lines, pool = [line], list(others)
    while pool:
        best = max((company(m, pool) for m in pool), key=lambda c: sum(m.h ** 2 for m in c))
        if len(best) < 2 or not any(_stacked(best, taken) for taken in lines):
            break
        lines.append(sorted(best, key=lambda m: m.x))
        pool = [m for m in pool if not any(m is c for c in best)]
    more = lines[1:]
    return more, bool(more and pool) or any(len(company(m, pool)) >= 2 for m in pool)


def _stacked(a: list[Mark], b: list[Mark]) -> bool:
    """Whether two lines of marks lie one under the other: half the narrower one's width in common."""
    (ax, _, aw, _), (bx, _, bw, _) = (join(line).box for line in (a, b))
    return min(ax + aw, bx + bw) - max(ax, bx) >= 0.5 * min(aw, bw)


def _admit_ones(found: Found, tall: float, weakest: float) -> None:
    """A "1" written as lightly as the digits beside it is a faint straight stroke, which alone is not
    told from a crease (CREASE). The only such stroke near the line's digits, next to them, upright, as
    tall as they are and nearly as dark as the weakest of them, is one of them: it joins `found.digits`.
    (Where several lie near the digits, they are a texture: the grain of a desk, a grid's lines the
    removal missed.)"""
    def near(m: Mark) -> bool:  # within two digits' heights of one, beside it or above or below
        return any(max(m.x - (d.x + d.box[2]), d.x - (m.x + m.box[2]), m.box[1] - (d.box[1] + d.h),
                       d.box[1] - (m.box[1] + m.h)) <= 2 * d.h for d in found.digits)

    beside = [m for m in found.rejected if m.reason == CREASE and near(m)]
    if len(beside) != 1:
        return
    one = beside[0]
    if next_digit(found.digits, one) and 0.7 * tall <= one.h <= 1.4 * tall and one.box[2] <= 0.7 * one.h \
            and one.strength >= 0.6 * weakest:
        found.rejected.remove(one)
        one.reason = None
        found.digits = sorted(found.digits + [one], key=lambda m: m.x)


def _join_broken(found: Found) -> None:
    """A small mark (too small, or smaller than the digits) whose ink comes within BROKEN of a digit's
    height of that digit's ink, and that leaves it no wider than tall, is a piece of it: a stroke that
    broke where it crossed a ruling (whose pixels were removed with the line), or where a faint pen
    skipped. It joins the digit."""
    small = [m for m in found.rejected if m.reason in ("too small", "smaller than the digits") and m.labels]
    for k, d in enumerate(found.digits):
        reach = max(2.0, BROKEN * d.h)
        for m in small:
            if m.reason is None:  # joined to a digit already
                continue
            union = join([d, m])
            # The boxes' gap (never more than the ink's) first: it is quick.
            if union.box[2] <= 1.1 * union.h and box_apart(d, m) <= reach and ink_apart(found.labels, d, m) <= reach:
                found.rejected.remove(m)
                m.reason = None
                d = found.digits[k] = union


def box_apart(a: Mark, b: Mark) -> int:
    """The gap (pixels) between two marks' boxes, across or up and down; negative where they overlap."""
    return max(b.x - (a.x + a.box[2]), a.x - (b.x + b.box[2]), b.box[1] - (a.box[1] + a.h), a.box[1] - (b.box[1] + b.h))


def ink_apart(labels: np.ndarray, a: Mark, b: Mark) -> float:
    """How near (pixels) `b`'s ink comes to `a`'s (their components in `labels`); inf if `b` has none."""
    x, y, w, h = join([a, b]).box
    part = labels[y:y + h, x:x + w]
    theirs = np.isin(part, b.labels)
    if not theirs.any():
        return float("inf")
    away = cv2.distanceTransform((~np.isin(part, a.labels)).view(np.uint8), cv2.DIST_L2, 3)
    return float(away[theirs].min())


def _inside(own: np.ndarray) -> np.ndarray:
    """The pixels inside a mark's loops (`own`: its pixels, bool): those that cannot be reached from
    outside its box without crossing it."""
    outside = np.pad(~own, 1, constant_values=True).view(np.uint8)
    cv2.floodFill(outside, None, (0, 0), 2)
    return outside[1:-1, 1:-1] == 1


def _holes(own: np.ndarray) -> int:
    """How many holes a mark (its own pixels, bool) has: a digit at most two, a net of lines many.
    Pinholes in a marker's textured stroke (under PINHOLE of the mark's height across) do not count."""
    _, _, stats, _ = cv2.connectedComponentsWithStats(_inside(own).view(np.uint8), connectivity=4)
    return int((stats[1:, cv2.CC_STAT_AREA] >= (PINHOLE * own.shape[0]) ** 2).sum())


def sheet_box(found: Found) -> tuple[int, int, int, int] | None:
    """The box (x0, y0, x1, y1, in the original image's pixels) of the sheet of paper a photo shows on
    a darker desk, as `found` saw it, when the sheet fills less than SHEET_AREA of the picture (and its
    box less than SHEET_BOX); else None.

    The sheet is the bright part of the paper's colour (Otsu's threshold of its brightness) that holds
    its brightest point. It must be a sheet, not the lit half of a page: at least half of its outline
    (where it is not the picture's own edge) is a sharp step in colour (see Sheets), and what lies
    just outside its box is darker than the sheet. A sheet not much larger than the paper's window (a
    card or a note seen from afar) is lost in the paper's colour, or shrunk in it: it is looked for in
    the picture itself too (see small_sheet), and that outline is taken when it holds the other."""
    if found.paper is None or dark_board(found.rgb):
        return None
    large, small = _paper_sheet(found), small_sheet(found)
    if small and (large is None or small[0] <= large[0] and small[1] <= large[1] and small[2] >= large[2]
                  and small[3] >= large[3]):
        return small
    return large


def note_corners(found: Found, least: float = NOTE_AREA) -> np.ndarray | None:
    """The four corners (x, y in the original image's pixels, clockwise from the top left as the
    photo is turned) of a sheet or note that lies whole in a photo, or None: the largest region of
    even colour that does not reach the picture's edge, fills between `least` and SHEET_AREA of the
    picture and is a quadrilateral (at least 0.9 of its convex hull and 0.85 of the four-cornered
    outline around it). It is found by its evenness, not its brightness: a note darker than its desk, or
    on a checked cloth, is as even as a white sheet on a dark desk. The writing on it, uneven, leaves
    holes in the region, which its outline ignores."""
    if not found.photo or found.colour is None:  # a strip or a dot: find_digits did not look
        return None
    h, w = found.rgb.shape[:2]
    half = cv2.resize(found.rgb, (w // 2, h // 2), interpolation=cv2.INTER_AREA).astype(np.float32)
    mean = cv2.blur(half, (5, 5))
    spread = np.sqrt(np.maximum(np.maximum.reduce(cv2.split(cv2.blur(half * half, (5, 5)) - mean * mean)), 0))
    even = (spread < 2 * np.percentile(spread, 10) + 4).astype(np.uint8)  # within twice the calmest grain
    even = cv2.morphologyEx(even, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(even, connectivity=4)
    sh, sw = even.shape
    best, largest = None, least * sh * sw
    for i in range(1, n):
        x, y, bw, bh, _ = stats[i]
        if x == 0 or y == 0 or x + bw == sw or y + bh == sh or not largest <= bw * bh <= SHEET_AREA * sh * sw:
            continue
        outlines, _ = cv2.findContours((labels == i).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        outline = max(outlines, key=cv2.contourArea)
        hull = cv2.convexHull(outline)
        area = cv2.contourArea(outline)
        if area < largest or area < 0.9 * cv2.contourArea(hull):
            continue
        quad = cv2.approxPolyDP(hull, 0.04 * cv2.arcLength(hull, True), True).reshape(-1, 2)
        if len(quad) != 4:
            quad = cv2.boxPoints(cv2.minAreaRect(hull))
        if area >= 0.85 * cv2.contourArea(quad.astype(np.float32)):
            best, largest = quad.astype(np.float64), area
    if best is None:
        return None
    centre = best.mean(axis=0)
    best = best[np.argsort(np.arctan2(best[:, 1] - centre[1], best[:, 0] - centre[0]))]  # clockwise on screen
    edges = np.roll(best, -1, axis=0) - best
    top = int(np.argmin(np.abs(np.arctan2(edges[:, 1], edges[:, 0]))))  # the edge closest to pointing right
    return np.roll(best, -top, axis=0) * 2 * found.scale


def digits_box(found: Found) -> tuple[int, int, int, int] | None:
    """The box (x0, y0, x1, y1, in the original image's pixels) around the line of digits `found` in a
    photo, with CLOSER_MARGIN of their height on every side, when it is at most CLOSER_PART of the
    photo; else None (a drawing, no digits, or no closer look to take: read again, nearly the whole
    photo would only be sampled anew). Read closer (predict.read), from the image's own pixels and
    enlarged when small, a small digit's strokes are more than the few pixels of the working image,
    and any digit's paper is estimated over the part alone, without the clutter around it."""
    if not found.photo or not found.digits:
        return None
    tall = max(d.h for d in found.digits)
    x, y, bw, bh = join(found.digits).box
    pad = CLOSER_MARGIN * tall
    h, w = found.rgb.shape[:2]
    x0, y0, x1, y1 = max(0, x - pad), max(0, y - pad), min(w, x + bw + pad), min(h, y + bh + pad)
    if (x1 - x0) * (y1 - y0) > CLOSER_PART * w * h:
        return None
    s = found.scale
    return round(x0 * s), round(y0 * s), round(x1 * s), round(y1 * s)


def small_sheet(found: Found) -> tuple[int, int, int, int] | None:
    """sheet_box of a small sheet, found in the picture at half size: the largest of small_sheets in the
    light part of its grey (Otsu's threshold), clearly lighter than what lies just around it."""
    h, w = found.rgb.shape[:2]
    grey = cv2.resize(cv2.cvtColor(found.rgb, cv2.COLOR_RGB2GRAY), (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    _, light = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    light = cv2.morphologyEx(light, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    margin = 3  # half-size pixels
    for x, y, bw, bh in small_sheets(light):
        x0, y0 = max(0, x - margin), max(0, y - margin)
        x1, y1 = min(grey.shape[1], x + bw + margin), min(grey.shape[0], y + bh + margin)
        if (x1 - x0) * (y1 - y0) > SHEET_BOX * grey.size:
            continue
        around = np.zeros(grey.shape, bool)
        around[y0:y1, x0:x1] = True
        around[y:y + bh, x:x + bw] = False
        if np.median(grey[around]) < 0.8 * np.median(grey[y:y + bh, x:x + bw]):
            f = 2 * found.scale
            return round(x0 * f), round(y0 * f), round(x1 * f), round(y1 * f)
    return None


def _paper_sheet(found: Found) -> tuple[int, int, int, int] | None:
    """sheet_box of a sheet as large as the paper's window, in the paper's colour."""
    lum = brightest(found.paper)
    y, x = np.unravel_index(np.argmax(cv2.blur(lum, (5, 5))), lum.shape)
    _, bright = cv2.threshold(lum, 0, 1, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    _, labels = cv2.connectedComponents(bright, connectivity=4)
    sheet = (labels == labels[y, x]).astype(np.uint8)
    if not 0.004 <= sheet.mean() <= SHEET_AREA:
        return None
    rim = (sheet - cv2.erode(sheet, np.ones((3, 3), np.uint8))).astype(bool)
    rim[0, :] = rim[-1, :] = rim[:, 0] = rim[:, -1] = False  # the picture's own edge is no sheet's edge
    if not rim.any() or Sheets(found.paper).edges[rim].mean() < 0.5:
        return None
    bx, by, bw, bh = cv2.boundingRect(sheet)
    around = np.zeros(sheet.shape, bool)
    around[max(0, by - 6):by + bh + 6, max(0, bx - 6):bx + bw + 6] = True
    around[by:by + bh, bx:bx + bw] = False
    if not around.any() or np.median(lum[around]) > 0.9 * np.median(lum[sheet > 0]):
        return None
    margin = 4  # small pixels
    x0, y0 = max(0, bx - margin), max(0, by - margin)
    x1, y1 = min(lum.shape[1], bx + bw + margin), min(lum.shape[0], by + bh + margin)
    if (x1 - x0) * (y1 - y0) > SHEET_BOX * lum.size:
        return None
    f = found.scale * found.rgb.shape[1] / lum.shape[1]  # the original image's pixels per small pixel
    return round(x0 * f), round(y0 * f), round(x1 * f), round(y1 * f)


def two_surfaces(rgb: np.ndarray, box, step: float = EDGE_STEP) -> bool:
    """Whether the surfaces on the two long sides of a thin straight mark (`box`) differ in colour by
    more than `step` (0-255, the median of a strip just beyond each side, in any channel): the border
    of a sheet on a desk, or its shadow, not a pen's stroke, which has the same paper on both sides."""
    h, w = rgb.shape[:2]
    x, y, bw, bh = box
    gap, width = 2, max(3, min(bw, bh))
    if bh >= bw:
        sides = [rgb[y:y + bh, max(0, x - gap - width):max(0, x - gap)],
                 rgb[y:y + bh, min(w, x + bw + gap):min(w, x + bw + gap + width)]]
    else:
        sides = [rgb[max(0, y - gap - width):max(0, y - gap), x:x + bw],
                 rgb[min(h, y + bh + gap):min(h, y + bh + gap + width), x:x + bw]]
    if any(side.size == 0 for side in sides):
        return False
    a, b = (np.median(side.reshape(-1, 3), axis=0) for side in sides)
    return float(np.abs(a - b).max()) > step


def elongation(mark: Mark, labels: np.ndarray) -> float:
    """How many times longer than wide a mark's ink is, in whatever direction it runs (the ratio of
    the spreads of its pixels along their principal axes): a straight stroke's is its length over
    its width, a digit's with a curve or a corner much less."""
    return axis(mark, labels)[1]


def axis(mark: Mark, labels: np.ndarray) -> tuple[float, float]:
    """The direction of a mark's principal axis (degrees, 0 to 180, clockwise from the picture's x axis)
    and its elongation, from its ink's second moments."""
    x, y, w, h = mark.box
    part = labels[y:y + h, x:x + w]
    own = part == mark.labels[0] if len(mark.labels) == 1 else np.isin(part, mark.labels)
    m = cv2.moments(own.view(np.uint8), binaryImage=True)
    if m["m00"] < 3:
        return 0.0, 1.0
    spread = np.hypot((m["mu20"] - m["mu02"]) / 2, m["mu11"])
    large, small = (m["mu20"] + m["mu02"]) / 2 + spread, (m["mu20"] + m["mu02"]) / 2 - spread
    direction = np.degrees(0.5 * np.arctan2(2 * m["mu11"], m["mu20"] - m["mu02"])) % 180
    return float(direction), float(np.sqrt(large / max(small, 1e-6)))


def _apart(a, b) -> np.ndarray:
    """Degrees between directions a and b (0 to 180 each): 0 to 90."""
    return np.abs((np.asarray(a) - b + 90) % 180 - 90)


def along_the_grain(mark: Mark, others: list[Mark], labels: np.ndarray, lines: list, least: int = 6) -> bool:
    """Whether a straight mark (a "1", or a streak) runs along the grain of the surface around it: of the
    `others` marks of its look (too faint or not) within twice its length of it, at least `least` are
    straight too and most of them run its way (within 12 degrees). The grain of wood or of a woven cloth
    is a field of streaks that run one way, its darkest streaks among them; a pen's stroke stands out
    alone, and the specks of paper's grain point every way. A mark that runs along one of the `lines`
    found is left to them: a grid's lines and the "1" written between them run the same way."""
    angle, long = axis(mark, labels)
    if long < 4:
        return False
    if lines:
        ruled = np.degrees(np.arctan2([y2 - y1 for _, y1, _, y2 in lines], [x2 - x1 for x1, _, x2, _ in lines])) % 180
        if (_apart(ruled, angle) <= 5).any():
            return False
    x, y, w, h = mark.box
    cx, cy, r = x + w / 2, y + h / 2, 2 * max(w, h)
    near = [m for m in others
            if m is not mark and abs(m.box[0] + m.box[2] / 2 - cx) <= r and abs(m.box[1] + m.box[3] / 2 - cy) <= r]
    streaks = [a for a, e in (axis(m, labels) for m in near) if e >= 3]
    return len(streaks) >= least and float(np.mean(_apart(streaks, angle) <= 12)) >= 0.6


def _holds_marks(mark: Mark, labels: np.ndarray, least: int = 2) -> bool:
    """Whether at least `least` of `mark`'s pieces lie inside a loop of its largest piece, apart from
    it: the eyes and mouth of a smiley face. A digit's loops (0, 6, 8, 9) hold nothing."""
    if len(mark.labels) <= least:
        return False
    x, y, w, h = mark.box
    part = labels[y:y + h, x:x + w]
    pieces = [(np.count_nonzero(part == label), label) for label in mark.labels]
    largest = max(pieces)[1]
    enclosed = _inside(part == largest)
    inside = 0
    for _, label in pieces:
        ys, xs = np.nonzero(part == label)
        if label != largest and enclosed[ys, xs].all() and ys.max() - ys.min() >= 0.1 * h:
            inside += 1
    return inside >= least


def _cup_ring(mark: Mark, labels: np.ndarray, ink: np.ndarray, colour: np.ndarray) -> tuple | None:
    """The ellipse (OpenCV's, in working pixels) that `mark` lies along if it is the ring a coffee or tea
    cup leaves, else None: about as wide as tall, its ink (the darker half of it, not the faint tint
    inside) along one ellipse, a line thinner than STAIN of its size, and brown: blue absorbed most, red
    least (`colour`, ink_map's per channel: relative to the paper, so that the light's colour does not
    matter). A round "0" is written in a pen's colour, or with a line several times thicker for its size."""
    x, y, w, h = mark.box
    if not 0.6 * h <= w <= 1.6 * h:
        return None
    own = np.isin(labels[y:y + h, x:x + w], mark.labels) & (ink[y:y + h, x:x + w] >= 0.5 * mark.strength)
    own = own.view(np.uint8)
    contours, _ = cv2.findContours(own, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    line = 2 * np.count_nonzero(own) / max(1.0, sum(cv2.arcLength(c, True) for c in contours))
    if line > STAIN * max(w, h):
        return None
    ys, xs = np.nonzero(own)
    (cx, cy), axes, angle = cv2.fitEllipse(np.c_[xs, ys].astype(np.float32))
    ellipse = ((cx + x, cy + y), axes, angle)
    # The ellipse of a ring is about its box (a straight or bent stroke fits a huge, thin one):
    if not (max(axes) <= 1.5 * max(w, h) and min(axes) >= 0.6 * min(w, h)) \
            or not _along_ellipse(ys + y, xs + x, ellipse):
        return None
    absorbed = np.median(colour[ys + y, xs + x], axis=0)
    red, green, blue = absorbed / max(1.0, float(absorbed.max()))
    return ellipse if blue == 1 and red <= 0.72 and red <= green <= 0.92 else None


def _pixels(mark: Mark, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (ys, xs) of `mark`'s pixels in the working image."""
    x, y, w, h = mark.box
    ys, xs = np.nonzero(np.isin(labels[y:y + h, x:x + w], mark.labels))
    return ys + y, xs + x


def _along_ellipse(ys: np.ndarray, xs: np.ndarray, ellipse: tuple, least: float = 0.8) -> bool:
    """Whether at least `least` of these pixels lie within 0.15 of its radii of the ellipse's outline."""
    (cx, cy), axes, angle = ellipse
    turn = np.radians(angle)
    u = (xs - cx) * np.cos(turn) + (ys - cy) * np.sin(turn)
    v = (ys - cy) * np.cos(turn) - (xs - cx) * np.sin(turn)
    radius = np.hypot(u / max(axes[0] / 2, 1), v / max(axes[1] / 2, 1))
    return len(xs) > 0 and np.mean(np.abs(radius - 1) < 0.15) >= least


def in_a_column(marks: list[Mark], least: int = 4) -> np.ndarray:
    """Per mark, whether it is one of at least `least` marks of its size, one above the other: the
    holes and wire of a spiral binding, punched holes, the rings of a ring binder; not writing."""
    if not marks:
        return np.zeros(0, bool)
    x, _, w, h = np.array([m.box for m in marks], np.float32).T
    centre = x + w / 2
    alike = ((np.abs(w[:, None] - w) <= 0.2 * np.maximum(w[:, None], w))
             & (np.abs(h[:, None] - h) <= 0.2 * np.maximum(h[:, None], h))
             & (np.abs(centre[:, None] - centre) <= 0.5 * w[:, None]))
    return alike.sum(axis=1) >= least  # each mark among its own


def rest_of(digit: Mark, mark: Mark) -> bool:
    """Whether `mark`, not read, may be a part of `digit` that it lost: at least a quarter of its height
    or width and no wider than it, at least half as dark, under or over it (half of the mark's width
    within the digit's) and no further from it than half its height."""
    x, y, w, h = digit.box
    mx, my, mw, mh = mark.box
    under = min(x + w, mx + mw) - max(x, mx) >= 0.5 * mw
    gap = max(my - (y + h), y - (my + mh))
    return under and 0 < gap <= 0.5 * h and 0.25 <= max(mw / w, mh / h) and mw <= w \
        and mark.strength >= 0.5 * digit.strength


def runs_into(found: Found) -> bool:
    """Whether the first or last digit of the line read has ink within half its height of a mark
    rejected as too large or as a paper's edge: a digit written against the edge, or against the
    false ink that the wide paper window leaves along a note's edge on a darker desk, is one component
    with it and is rejected with it, so that the number may go on there."""
    large = [m for m in found.rejected if m.labels and (m.reason == "too large" or m.reason in EDGES)]
    return any(m.h > 1.5 * d.h and box_apart(d, m) <= 0.5 * d.h and ink_apart(found.labels, d, m) <= 0.5 * d.h
               for m in large for d in found.digits[:1] + found.digits[-1:])


def next_digit(digits: list[Mark], mark: Mark) -> bool:
    """Whether `mark`, which was not read (cut by the picture's edge, too faint), is another digit of the
    line `digits`: as large as half a digit, level with one of them and no further from it than a digit
    is tall. Then the line cannot be read whole."""
    cx, cy, cw, ch = mark.box
    for digit in digits:
        x, y, w, h = digit.box
        gap = max(cx - (x + w), x - (cx + cw))
        level = min(y + h, cy + ch) - max(y, cy) > 0.3 * min(h, ch)
        if max(cw, ch) >= 0.5 * h and level and gap <= h:
            return True
    return False


def slices(found: Found, mark: Mark, min_width: float = 0.25) -> list[Mark]:
    """`mark` cut into slices at the columns where its ink is locally thinnest, at least `min_width`
    of its height apart: more cuts than there are touching digits, for predict.read to join back.
    Each slice keeps the mark's components and its ink's strength (predict's `_piece_beside` weighs a
    slice left out beside a digit), its box shrunk to the rows its ink fills."""
    x, y, w, h = mark.box
    crop = found.crop(mark)
    ink = np.convolve(crop.sum(axis=0), np.ones(3) / 3, mode="same")
    step = max(2, round(min_width * h))
    edge = max(2, round(0.12 * h))  # a "1" at either end is narrower than `step`
    minima = [c for c in range(edge, w - edge + 1) if ink[c] <= ink[c - 1] and ink[c] <= ink[c + 1]]
    chosen = []
    for c in sorted(minima, key=lambda c: ink[c]):  # the thinnest first
        if all(abs(c - d) >= step for d in chosen):
            chosen.append(c)
    bounds = [0, *sorted(chosen), w]
    out = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        rows = np.nonzero(crop[:, a:b].sum(axis=1) > 0)[0]
        if len(rows):
            out.append(Mark((x + a, y + int(rows[0]), b - a, int(rows[-1] + 1 - rows[0])), mark.labels,
                            strength=mark.strength, clarity=mark.clarity))
    return out


def debug_picture(found: Found, boxes: list[tuple] = (), labels: list[str] = ()) -> Image.Image:
    """The working image with the digits read in green (`boxes` in working pixels, `labels` above them),
    the rejected marks in red with the reason and the removed lines in blue; the ink mask beside it."""
    img = found.rgb.copy()
    for x1, y1, x2, y2 in found.lines:
        cv2.line(img, (int(x1), int(y1)), (int(x2), int(y2)), (40, 90, 255), 1)
    labelled = 2 * MIN_HEIGHT * min(img.shape[:2])  # smaller rejects get a box only, so reasons stay legible
    for m in found.rejected:
        x, y, w, h = m.box
        cv2.rectangle(img, (x, y), (x + w, y + h), (220, 30, 30), 1)
        if max(w, h) >= labelled:
            cv2.putText(img, m.reason or "", (x, max(10, y - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (220, 30, 30), 1)
    # A number's digits stand close together: labels take turns above and below their boxes, each in
    # the row where the label before it ends sooner.
    ends = [-1, -1]  # where the last label above the boxes, and below them, ends
    for (x, y, w, h), label in sorted(zip(boxes, labels)):
        cv2.rectangle(img, (x, y), (x + w, y + h), (20, 170, 20), 2)
        (width, height), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        row = 0 if x > ends[0] or ends[0] <= ends[1] else 1
        cv2.putText(img, label, (x, max(12, y - 4) if row == 0 else y + h + height + 4),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, (20, 170, 20), 1)
        ends[row] = x + width
    mask = np.repeat(found.mask[..., None].astype(np.uint8) * 255, 3, axis=2)
    return Image.fromarray(np.concatenate([img, mask], axis=1 if img.shape[0] >= img.shape[1] else 0))
