"""The report's SVGs printed once each, then placed in every PDF as ready-made PDF forms.

WeasyPrint draws an SVG with its own pure-Python interpreter on every print, and the report's figures and
formulas were most of the PDF's drawing time (52 SVGs: 1.1 of 1.8 s on the 2-core box) although they rarely
change between two prints. So each SVG is printed once, alone, on a page the size of its viewBox, and
that page is cached as a PDF form: its content stream and the objects its resources reach (fonts, images,
graphics states), with the references between them left open.

The report is then printed with a stand-in for each SVG: an SVG with the same root attributes (size,
viewBox, style, label), so the layout cannot change, holding one 1-pixel image with a name of its own.
Before the file is written (WeasyPrint's documented ``finisher``), each stand-in's image object becomes
its form, drawn over the same unit square the image filled. The tags are the stand-in's, so the figure's
structure element and alternative text are the SVG's.

A form is keyed by the SVG's text and the WeasyPrint version that printed it. An SVG this cannot stand in
for (no width, height or viewBox) is printed as it is; a stand-in missing from the printed file raises
``NotPrinted``, and the caller prints the page the plain way.
"""

from __future__ import annotations

import base64
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

FORMAT = 1  # of the cached files: part of each key
_DATA_URI = re.compile(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)")
_INLINE = re.compile(r"<svg\b[^>]*>.*?</svg>", re.S)
_ROOT = re.compile(r"<svg\b([^>]*)>", re.S)
_ATTR = re.compile(r"""([\w:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_REF = re.compile(rb"(\d+) 0 R")
# what a stand-in keeps of the SVG's root element: all that sizes, places, styles or labels it
_KEPT = ("width", "height", "viewBox", "preserveAspectRatio", "style", "role", "aria-label", "class", "id")

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
        return json.dumps(head).encode() + b"\n" + b"".join(blobs)

    @classmethod
    def load(cls, raw: bytes) -> Form:
        line, _, rest = raw.partition(b"\n")
        head = json.loads(line)
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
        if at != len(rest) or not isinstance(content, bytes):
            raise ValueError("a truncated form")
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
            svg = base64.b64decode(m.group(1)).decode("utf-8")
            stand_in = self._stand_in(svg)
            return m.group(0) if stand_in is svg else _svg_uri(stand_in)

        page = _DATA_URI.sub(data_uri, page)
        return _INLINE.sub(lambda m: self._stand_in(m.group(0)), page)

    def _stand_in(self, svg: str) -> str:
        if svg.count("<svg") > 1:  # an SVG inside an SVG: the inline match ended at the inner one
            return svg
        root = _ROOT.search(svg)
        attrs = _attributes(root.group(1)) if root else {}
        box = attrs.get("viewBox", "").replace(",", " ").split()
        if len(box) != 4 or "width" not in attrs or "height" not in attrs:
            return svg  # drawn the plain way
        version = getattr(self.weasyprint, "__version__", "")
        key = hashlib.sha256(f"{FORMAT}\0{version}\0{svg}".encode()).hexdigest()[:32]
        url = _png(key)
        if url not in self.by_url:
            self.by_url[url] = self._form(key, svg)
        kept = " ".join(f'{k}="{attrs[k].replace(chr(34), "&quot;")}"' for k in _KEPT if k in attrs)
        x, y, w, h = box
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" {kept}><image x="{x}" y="{y}" width="{w}" '
            f'height="{h}" preserveAspectRatio="none" href="{url}"/></svg>'
        )

    def _form(self, key: str, svg: str) -> Form:
        path = self.folder / f"{key}.form"
        try:
            return Form.load(path.read_bytes())
        except (OSError, ValueError, KeyError, TypeError):
            pass  # not made yet, or not readable: make it again
        form = print_alone(svg, self.weasyprint, self.base_url)
        atomic_write(path, form.dump(), CACHE_FIX)
        return form

    def finisher(self) -> Callable[[Any, pydyf.PDF], None]:
        """WeasyPrint's ``finisher``: turn each stand-in's image object into its form."""
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
            if len({id(f) for f in placed.values()}) != len(names):
                raise NotPrinted(f"{len(names)} stand-ins, {len(placed)} found in the printed file")
            for number, form in placed.items():
                _place(form, by_number[number], pdf)

        return finish


def print_alone(svg: str, weasyprint: Any, base_url: str | None = None) -> Form:
    """Print ``svg`` alone on a page the size of its viewBox and take that page apart into a ``Form``."""
    root = _ROOT.search(svg)
    box = (_attributes(root.group(1)) if root else {}).get("viewBox", "").replace(",", " ").split()
    w, h = float(box[2]), float(box[3])
    html = (
        f"<style>@page {{ size: {w}px {h}px; margin: 0 }} html, body {{ margin: 0 }} "
        f"img {{ display: block; width: {w}px; height: {h}px }}</style><img src='{_svg_uri(svg)}'>"
    )
    taken: list[Form] = []
    weasyprint.HTML(string=html, base_url=base_url).write_pdf(
        finisher=lambda _, pdf: taken.append(_page(pdf))
    )
    return taken[0]


def _page(pdf: pydyf.PDF) -> Form:
    """The one page of ``pdf`` as a ``Form``."""
    by_number = {obj.number: obj for obj in pdf.objects}
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
            "BBox": pydyf.Array([0, 0, form.width, form.height]),
            "Matrix": pydyf.Array([1 / form.width, 0, 0, 1 / form.height, 0, 0]),
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
