"""``aim photos fetch`` and ``aim photos info``: get the ImageNet sample photos, and say where they are.

The plugin registers this module as a command (hook ``aim_cli_commands``: ``name`` and ``register``).
``fetch`` downloads the public repository ``EliSchwartz/imagenet-sample-images`` (1000 photos, one per
class, ``<wnid>_<name>.JPEG``) as a zip over HTTPS and keeps only the photos; it is the only command of
AIM that uses the network, and only when asked.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

#: the command's name: ``aim photos``
name = "photos"
#: the public source of the sample (its default branch, as a zip)
SAMPLE_REPO = "EliSchwartz/imagenet-sample-images"
SAMPLE_URL = f"https://github.com/{SAMPLE_REPO}/archive/HEAD.zip"
_PHOTO = re.compile(r"^n\d{8}_[^/\\]+\.(jpe?g|png)$", re.I)
_CHUNK = 1 << 20


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("photos", help="the ImageNet sample photos: fetch them, or see where they are")
    sub = parser.add_subparsers(dest="photos_command", metavar="PHOTOS_COMMAND")
    parser.set_defaults(func=lambda args: _usage(parser))
    fetch = sub.add_parser(
        "fetch",
        help=f"download the 1000 sample photos from github.com/{SAMPLE_REPO} (needs the network)",
        description=f"Download {SAMPLE_URL} (~100 MB) and keep its 1000 photos in DIR. The photos come from "
        "ImageNet, whose terms apply (non-commercial research and education).",
    )
    fetch.add_argument("--to", type=Path, default=None,
                       help="folder to fill (default: imagenet-sample-1000 in the cache)")
    fetch.add_argument("--url", default=SAMPLE_URL, help=argparse.SUPPRESS)
    fetch.set_defaults(func=run_fetch)
    info = sub.add_parser("info", help="where the photos are found, how many, and where their anonymised view is")
    info.set_defaults(func=run_info)
    from aim_imagenet.eval_cli import add_eval_parser

    add_eval_parser(sub)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def default_target() -> Path:
    from aim_agent.exemplars.dataset import default_cache_dir
    from aim_imagenet.photos import SAMPLE_DIR

    return default_cache_dir() / SAMPLE_DIR


def extract_photos(archive: Path, target: Path) -> int:
    """Copy the ``<wnid>_<name>`` photos of a zip into ``target`` (flat: only base names are used); how many.

    Written into a temporary folder beside ``target`` and renamed into place, so ``target`` is whole or absent.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        count = 0
        with zipfile.ZipFile(archive) as zf:
            for member in zf.infolist():
                base = member.filename.rsplit("/", 1)[-1]
                if member.is_dir() or not _PHOTO.match(base):
                    continue
                with zf.open(member) as src, (tmp / base).open("wb") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
                count += 1
        if count == 0:
            raise ValueError(f"{archive} holds no <wnid>_<name>.JPEG photos: is it the {SAMPLE_REPO} archive?")
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
        return count
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def download(url: str, dest: Path) -> None:
    """Fetch ``url`` into ``dest``, showing progress; a clear error when offline."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    try:
        response = urllib.request.urlopen(url, timeout=60)
    except (urllib.error.URLError, OSError) as exc:
        raise ConnectionError(
            f"cannot download {url}: {getattr(exc, 'reason', exc)}. `aim photos fetch` needs the network; "
            f"offline, copy the photos of github.com/{SAMPLE_REPO} (or photos of your own) into a folder and "
            "set AIM_IMAGENET_SAMPLE to it"
        ) from exc
    total = int(response.headers.get("Content-Length") or 0) or None
    with response, dest.open("wb") as out, Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn()
    ) as progress:
        task = progress.add_task("downloading", total=total)
        while chunk := response.read(_CHUNK):
            out.write(chunk)
            progress.advance(task, len(chunk))


def run_fetch(args: argparse.Namespace) -> int:
    target = (args.to or default_target()).expanduser()
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "sample.zip"
        try:
            download(args.url, archive)
        except ConnectionError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        count = extract_photos(archive, target)
    print(f"{count} photos in {target}")
    if args.to is not None:
        print(f"AIM finds them there when AIM_IMAGENET_SAMPLE={target}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from aim_agent.exemplars.dataset import default_cache_dir
    from aim_imagenet.photos import VIEW_DIR, candidate_sources, list_photos, photo_source

    source = photo_source()
    for path in candidate_sources():
        mark = "found" if path == source else ("exists" if path.exists() else "absent")
        print(f"  {mark:6} {path}")
    if source is None:
        print("no photos found: run `aim photos fetch` (or set AIM_IMAGENET_SAMPLE to a folder of photos)")
        return 1
    files = list_photos(source)
    print(f"{len(files)} photos in {source}")
    print(f"datasets: {VIEW_DIR}, {VIEW_DIR}-discovery, {VIEW_DIR}-heldout; with flipped, cropped and zoomed-out "
          f"copies: {VIEW_DIR}-variants (and its -discovery, -heldout). Anonymised views under "
          f"{default_cache_dir() / 'datasets'}")
    return 0
