"""The report's SVGs printed once each, then placed in every PDF as ready-made PDF forms.

WeasyPrint draws an SVG with its own pure-Python interpreter on every print, and the report's figures and
formulas were most of the PDF's drawing time (52 SVGs: 1.1 of 1.8 s on the 2-core box) although they rarely
change between two prints. So each SVG is printed once, alone, on a page of its own size, and that page is
cached as a PDF form: its content stream and the objects its resources reach (fonts, images, graphics
states), with the references between them left open and its font subsets renamed as its own.

The report is then printed with a stand-in for each SVG: its root element as written but for the
attributes that scale or move its drawing (viewBox, preserveAspectRatio, transform), so it is laid out in
the same box, holding one 1-pixel image with a name of its own that fills that box. Before the file is
written (WeasyPrint's documented ``finisher``), each stand-in's image object becomes its form, drawn over
the unit square the image filled. The tags are the stand-in's, so the figure's structure element and
alternative text are the SVG's.

A form is keyed by the SVG's text, the base URL and the WeasyPrint version that printed it, and checked
by a digest when read. An SVG a form could draw otherwise than WeasyPrint would (see ``_stand_in``) is
printed as it is; when none of the stand-ins is found in the printed file, ``NotPrinted`` sends the page
the plain way.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydyf

from report.core.atomic import atomic_write
from report.output import CACHE_FIX

# of the cached files, and this module's code (a cache kept across edits of it is printed again): in each key
FORMAT = f"3:{hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]}"
_DATA_URI = re.compile(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)")
_INLINE = re.compile(r"<svg\b[^>]*>.*?</svg>", re.S)
_ROOT = re.compile(r"<svg\b([^>]*)>", re.S)
_ATTR = re.compile(r"""([\w:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_REF = re.compile(rb"(\d+) 0 R")
_SCALING = re.compile(r"""\s(?:viewBox|preserveAspectRatio|transform)\s*=\s*(?:"[^"]*"|'[^']*')""")

Parts = list[bytes | int]  # PDF syntax, each int a reference to that index of the form's objects


class NotPrinted(Exception):
    """The forms could not be placed in this page: print it the plain way."""


@dataclass
class Form:
    """One SVG's page: its size in points, its content stream as written, its filter, its resources
    dictionary and the objects that reaches (each a body of ``Parts``; ``streams`` says which are streams)."""

    width: float
    height: float
    content: bytes
    content_filter: str | None
    resources: Parts
    objects: list[Parts]
    streams: list[bool]

    def dump(self) -> bytes:
        """A JSON line that says how the bytes after it split into parts."""
        blobs: list[bytes] = []

        def plan(parts: Parts) -> list[int | list[int]]:
            blobs.extend(p for p in parts if isinstance(p, bytes))
            return [p if isinstance(p, int) else [len(p)] for p in parts]

        head = {
            "width": self.width,
            "height": self.height,
            "filter": self.content_filter,
            "content": plan([self.content]),
            "resources": plan(self.resources),
            "objects": [plan(o) for o in self.objects],
            "streams": self.streams,
        }
        data = b"".join(blobs)
        head["sha256"] = hashlib.sha256(data).hexdigest()  # a damaged file is made again, never placed
        return json.dumps(head).encode() + b"\n" + data

    @classmethod
    def load(cls, raw: bytes) -> Form:
        line, _, rest = raw.partition(b"\n")
        head = json.loads(line)
        if hashlib.sha256(rest).hexdigest() != head["sha256"]:
            raise ValueError("a damaged form")
        at = 0

        def parts(plan: list[Any]) -> Parts:
            nonlocal at
            out: Parts = []
            for p in plan:
                if isinstance(p, int):
                    out.append(p)
                else:
                    out.append(rest[at : at + p[0]])
                    at += p[0]
            return out

        (content,) = parts(head["content"])  # in the order dump wrote them
        resources = parts(head["resources"])
        objects = [parts(o) for o in head["objects"]]
        refs = [p for parts in [resources, *objects] for p in parts if isinstance(p, int)]
        if at != len(rest) or not isinstance(content, bytes) or not all(0 <= r < len(objects) for r in refs):
            raise ValueError("a damaged form")
        return cls(
            head["width"], head["height"], content, head["filter"], resources, objects, head["streams"]
        )


class Forms:
    """One page's stand-ins and their forms, which are cached in ``folder``."""

    def __init__(self, folder: Path, weasyprint: Any, base_url: str | None = None) -> None:
        self.folder = folder
        self.weasyprint = weasyprint
        self.base_url = base_url
        self.by_url: dict[str, Form] = {}  # a stand-in's image URL -> its form

    def page(self, page: str) -> str:
        """``page`` with each SVG (inline, or an image's data URI) replaced by its stand-in."""

        def data_uri(m: re.Match[str]) -> str:
            try:
                svg = base64.b64decode(m.group(1), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return m.group(0)  # WeasyPrint reads it as it is
            stand_in = self._stand_in(svg)
            return m.group(0) if stand_in is svg else _svg_uri(stand_in)

        page = _DATA_URI.sub(data_uri, page)
        return _INLINE.sub(lambda m: self._stand_in(m.group(0)), page)

    def _stand_in(self, svg: str) -> str:
        """The stand-in for ``svg``, or ``svg`` itself where a form could draw it otherwise than
        WeasyPrint would: an SVG inside it, no viewBox to scale its drawing by, a size that is not two
        absolute lengths (or two em lengths), an ``overflow`` that may draw beyond its box, or a radial
        gradient, which poppler loses in a form (pdfium draws it)."""
        root = _ROOT.search(svg)
        if root is None or svg.count("<svg") > 1 or root.group(1).rstrip().endswith("/"):
            return svg  # nested (the inline match ended at the inner one), or empty
        attrs = _attributes(root.group(1))
        size = _size(attrs)
        # poppler (evince, okular, pdftoppm) draws no radial gradient inside a form scaled to its box
        if size is None or "overflow" in root.group(1) or "radialGradient" in svg:
            return svg
        version = getattr(self.weasyprint, "__version__", "")
        key = hashlib.sha256(f"{FORMAT}\0{version}\0{self.base_url}\0{svg}".encode()).hexdigest()[:32]
        url = _png(key)
        if url not in self.by_url:
            self.by_url[url] = self._form(key, svg, size)
        # the root element as written but for the attributes that scale or move the drawing, which the
        # form has done: the same box, and a viewBox of the form's size that the image fills
        w, h = (_real(v).decode() for v in size)
        tag = _SCALING.sub("", root.group(1))
        tag += "" if "xmlns=" in tag else ' xmlns="http://www.w3.org/2000/svg"'
        return (
            f'<svg{tag} viewBox="0 0 {w} {h}" preserveAspectRatio="none"><image width="{w}" height="{h}" '
            f'preserveAspectRatio="none" href="{url}"/></svg>'
        )

    def _form(self, key: str, svg: str, size: tuple[float, float]) -> Form:
        path = self.folder / f"{key}.form"
        try:
            return Form.load(path.read_bytes())
        except (OSError, ValueError, KeyError, TypeError):
            pass  # not made yet, or damaged: made again
        form = print_alone(svg, size, self.weasyprint, self.base_url, key)
        atomic_write(path, form.dump(), CACHE_FIX)
        return form

    def finisher(self) -> Callable[[Any, pydyf.PDF], None]:
        """WeasyPrint's ``finisher``: turn each stand-in's image object into its form. A stand-in the page
        never draws (hidden, in a comment) has no image; none found at all means WeasyPrint names its
        images otherwise than this expects, and the page is printed the plain way."""
        names = {
            "i" + hashlib.md5(url.encode(), usedforsecurity=False).hexdigest(): f
            for url, f in self.by_url.items()
        }

        def finish(_document: Any, pdf: pydyf.PDF) -> None:
            by_number = {obj.number: obj for obj in pdf.objects}
            placed: dict[int, Form] = {}
            for obj in pdf.objects:
                for xobjects in _xobject_dicts(obj, by_number):
                    for name, ref in xobjects.items():
                        form = names.get(str(name)[:-1])  # WeasyPrint's image name: i, the id, a 0/1 flag
                        if form is not None and isinstance(ref, bytes) and (m := _REF.fullmatch(ref)):
                            placed[int(m.group(1))] = form
            if names and not placed:
                raise NotPrinted(f"none of {len(names)} stand-ins found in the printed file")
            for number, form in placed.items():
                _place(form, by_number[number], pdf)

        return finish


def print_alone(
    svg: str, size: tuple[float, float], weasyprint: Any, base_url: str | None = None, salt: str = ""
) -> Form:
    """Print ``svg`` alone on a page of its own ``size`` (points) and take that page apart into a
    ``Form``; ``salt`` makes its font subsets' names its own."""
    w, h = size
    html = (
        f"<style>@page {{ size: {w}pt {h}pt; margin: 0 }} html, body {{ margin: 0 }} "
        f"img {{ display: block; width: {w}pt; height: {h}pt }}</style><img src='{_svg_uri(svg)}'>"
    )
    taken: list[Form] = []
    weasyprint.HTML(string=html, base_url=base_url).write_pdf(
        finisher=lambda _, pdf: taken.append(_page(pdf, salt))
    )
    return taken[0]


def _page(pdf: pydyf.PDF, salt: str) -> Form:
    """The one page of ``pdf`` as a ``Form``, its font subsets renamed: WeasyPrint names a subset after
    the font, not its glyphs, and two subsets in one file must not share a name (ISO 32000-1, 9.6.4)."""
    by_number = {obj.number: obj for obj in pdf.objects}
    for obj in pdf.objects:
        for key in ("BaseFont", "FontName"):
            name = obj.get(key) if isinstance(obj, dict) else None
            name = name.encode() if isinstance(name, str) else name  # pydyf writes either as it is
            if isinstance(name, bytes) and re.fullmatch(rb"/[A-Z]{6}\+.+", name):
                digest = hashlib.sha256(salt.encode() + name).digest()
                obj[key] = b"/" + bytes(65 + b % 26 for b in digest[:6]) + name[7:]
    (page,) = [o for o in pdf.objects if isinstance(o, dict) and o.get("Type") == "/Page"]
    x0, y0, x1, y1 = (float(v) for v in page["MediaBox"])
    content = _deref(page["Contents"], by_number)
    if (x0, y0) != (0, 0) or not isinstance(content, pydyf.Stream):
        raise NotPrinted("a page that is not one content stream from the origin")
    index: dict[int, int] = {}  # object number in that file -> index in the form's objects
    objects: list[Parts] = []
    streams: list[bool] = []

    def ref(number: int) -> int:
        if number not in index:
            index[number] = len(objects)
            objects.append([])
            streams.append(isinstance(by_number[number], pydyf.Stream))
            objects[index[number]] = _body(by_number[number], ref)
        return index[number]

    resources = _parts(_deref(page["Resources"], by_number), ref)
    return Form(x1, y1, *_stream_data(content), resources, objects, streams)


def _place(form: Form, image: pydyf.Stream, pdf: pydyf.PDF) -> None:
    """Make ``image`` (a stand-in's image object) draw ``form`` over the unit square it filled."""
    objects: list[pydyf.Object] = []
    for parts, stream in zip(form.objects, form.streams, strict=True):
        objects.append(_Body(parts, objects, stream))
        pdf.add_object(objects[-1])
    extra = pydyf.Dictionary(
        {
            "Type": "/XObject",
            "Subtype": "/Form",
            "BBox": pydyf.Array([0, 0, _real(form.width), _real(form.height)]),
            # onto the unit square the image filled (pydyf would round 1/width to six decimals)
            "Matrix": pydyf.Array([_real(1 / form.width), 0, 0, _real(1 / form.height), 0, 0]),
            "Resources": _Body(form.resources, objects),
        }
    )
    if form.content_filter:
        extra["Filter"] = form.content_filter
    image.extra, image.stream, image.compress = extra, [form.content], False


class _Body(pydyf.Object):
    """PDF syntax with open references, closed when the file is written (every object has its number)."""

    def __init__(self, parts: Parts, objects: list[pydyf.Object], stream: bool = False) -> None:
        super().__init__()
        self.parts, self.objects, self.stream = parts, objects, stream

    @property
    def data(self) -> bytes:
        return b"".join(p if isinstance(p, bytes) else self.objects[p].reference for p in self.parts)

    @property
    def compressible(self) -> bool:
        return not self.stream  # a stream cannot go into an object stream


def _body(obj: pydyf.Object, ref: Callable[[int], int]) -> Parts:
    """An object's body as the file holds it, its references to other objects left open."""
    if not isinstance(obj, pydyf.Stream):
        return _parts(obj, ref)
    data, kind = _stream_data(obj)
    extra = {**obj.extra, "Length": len(data), **({"Filter": kind} if kind else {})}
    return [*_parts(extra, ref), b"\nstream\n", data, b"\nendstream"]


def _stream_data(stream: pydyf.Stream) -> tuple[bytes, str | None]:
    """A stream's data as the file holds it, and its filter: compressed unless already encoded."""
    data = b"\n".join(_bytes(item) for item in stream.stream)
    if stream.extra.get("Filter"):
        return data, str(stream.extra["Filter"])
    return zlib.compress(data), "/FlateDecode"


def _parts(value: Any, ref: Callable[[int], int]) -> Parts:
    """``value`` as PDF syntax, with each reference (``N 0 R``) as the index ``ref`` gives it."""
    if isinstance(value, bytes) and (m := _REF.fullmatch(value)):
        return [ref(int(m.group(1)))]
    if isinstance(value, pydyf.Stream):
        raise NotPrinted("a stream held directly in another object")
    if isinstance(value, dict):
        out: Parts = [b"<<"]
        for k, v in value.items():
            out += [b"/" + _bytes(k) + b" ", *_parts(v, ref)]
        return [*out, b">>"]
    if isinstance(value, list | tuple):
        out = [b"["]
        for i, v in enumerate(value):
            out += [b" "] * bool(i) + _parts(v, ref)
        return [*out, b"]"]
    return [_bytes(value)]


def _bytes(item: Any) -> bytes:
    """A plain value as pydyf writes it (its ``_to_bytes``, private there)."""
    if isinstance(item, bytes):
        return item
    if isinstance(item, float):
        return str(int(item)).encode() if item.is_integer() else f"{item:f}".rstrip("0").encode()
    if isinstance(item, pydyf.Object):
        return item.data
    return str(item).encode("ascii")


def _real(x: float) -> bytes:
    return f"{x:.12f}".rstrip("0").rstrip(".").encode()


def _deref(value: Any, by_number: dict[int, pydyf.Object]) -> Any:
    m = _REF.fullmatch(value) if isinstance(value, bytes) else None
    return by_number[int(m.group(1))] if m else value


def _xobject_dicts(obj: Any, by_number: dict[int, pydyf.Object]) -> list[dict[str, Any]]:
    """The XObject dictionaries in an object's resources (a page's, or a form's in its stream dictionary)."""
    found = []
    for holder in (obj, getattr(obj, "extra", None)):
        resources = _deref(holder.get("Resources"), by_number) if isinstance(holder, dict) else None
        xobjects = _deref(resources.get("XObject"), by_number) if isinstance(resources, dict) else None
        if isinstance(xobjects, dict):
            found.append(xobjects)
    return found


_LENGTH = re.compile(r"\s*(\d*\.?\d+(?:[eE][-+]?\d+)?)\s*(px|pt|pc|in|cm|mm|em)?\s*")
_POINTS = {None: 0.75, "px": 0.75, "pt": 1.0, "pc": 12.0, "in": 72.0, "cm": 72 / 2.54, "mm": 72 / 25.4}


def _size(attrs: dict[str, str]) -> tuple[float, float] | None:
    """The SVG's width and height in points when it has a viewBox to scale its drawing to them and both
    are absolute lengths, or both em (taken as 12 pt: the same drawing at another scale); else None."""
    box = attrs.get("viewBox", "").replace(",", " ").split()
    lengths = [_LENGTH.fullmatch(attrs.get(k, "")) for k in ("width", "height")]
    if len(box) != 4 or not all(lengths):
        return None
    try:
        if min(float(box[2]), float(box[3])) <= 0:
            return None
    except ValueError:
        return None
    units = [m.group(2) for m in lengths if m]
    if "em" in units and units != ["em", "em"]:
        return None
    w, h = (float(m.group(1)) * _POINTS.get(m.group(2), 12.0) for m in lengths if m)
    return (w, h) if w > 0 and h > 0 else None


def _attributes(tag: str) -> dict[str, str]:
    return {name: double or single for name, double, single in _ATTR.findall(tag)}


def _svg_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def _png(key: str) -> str:
    """A 1x1 grey PNG as a data URI, one of its own for each ``key`` (held in a text chunk)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
    png += chunk(b"tEXt", b"form\0" + key.encode()) + chunk(b"IDAT", zlib.compress(b"\0\x80\x80\x80"))
    return "data:image/png;base64," + base64.b64encode(png + chunk(b"IEND", b"")).decode()
