"""``ablate attention``: the teacher's last-block [CLS] attention maps (paper Fig. 1) as a PNG."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ablate.errors import UserError
from ablate.folder import check_writable, remove_made
from sweep_format.files import file_on_path, user_arg
from sweep_format.layout import CHECKPOINT_NAME
from sweep_format.text import plural, printable
from trainables.config import DEVICES, MAX_CROP, device_problem

DEFAULT_IMAGES = 4


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "attention", help="the teacher's [CLS] attention maps (paper Fig. 1) as a PNG",
        description="Draw the self-attention of the [CLS] token in the last block of a DINO "
                    "teacher (a ViT), per head and averaged over heads, upsampled to the image "
                    "(nearest, one square per patch), beside each image; optionally the mask of "
                    "the patches that hold --threshold of the attention mass. SOURCE is a run "
                    "folder of `ablate train`, a sweep trial folder (its latest checkpoint) or a "
                    f"{CHECKPOINT_NAME} file. Images: the run's held-out (test split) images, evenly "
                    "spaced, and/or image files given with --image.",
        epilog="example: ablate attention runs/vit --images 4 --threshold 0.6 "
               "--out runs/vit/attention_maps.png")
    p.add_argument("source", metavar="SOURCE", help="run folder, sweep trial folder or checkpoint file")
    p.add_argument("--images", type=int, default=None, metavar="N",
                   help=f"held-out images of the run's dataset (default {DEFAULT_IMAGES}; "
                        "0 when --image is given)")
    p.add_argument("--image", dest="image_files", action="append", default=[], type=user_arg, metavar="PATH",
                   help="an image file to show (repeatable)")
    p.add_argument("--threshold", type=float, default=None, metavar="SHARE",
                   help="also draw the mask keeping this share of attention mass, e.g. 0.6")
    p.add_argument("--image-size", type=int, default=None, metavar="PX",
                   help="side the images are resized and center-cropped to (default: the run's "
                        "global_crops_size)")
    p.add_argument("--device", default="auto", help=f"{DEVICES} (default auto)")
    p.add_argument("--out", required=True, type=user_arg, metavar="FILE.png", help="the PNG to write")
    p.set_defaults(func=main)


def check_args(args: argparse.Namespace) -> int:
    """The number of dataset images to draw; a UserError for arguments that cannot work."""
    n = args.images if args.images is not None else (0 if args.image_files else DEFAULT_IMAGES)
    if n < 0 or (n == 0 and not args.image_files):
        raise UserError(f"--images {args.images}: give at least 1 image (or files with --image PATH)")
    if args.threshold is not None and not 0 < args.threshold <= 1:
        raise UserError(f"--threshold {args.threshold}: must be in (0, 1], the share of attention "
                        "mass the mask keeps (e.g. 0.6)")
    if args.image_size is not None and not 1 <= args.image_size <= MAX_CROP:  # 20000: killed for memory
        raise UserError(f"--image-size {args.image_size}: must be a number of pixels from 1 to {MAX_CROP}, "
                        "the largest crop a run trains on")
    if problem := device_problem(args.device):  # torch.device's RuntimeError, after the checkpoint is read
        raise UserError(f"--device {args.device}: {problem}")
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UserError(f"--out {args.out}: must be a .png file")
    if out.is_dir():
        raise UserError(f"--out {args.out}: a folder; give the .png file to write, e.g. {out / 'a.png'}")
    if file := file_on_path(out.parent):
        raise UserError(f"--out {args.out}: {file} is a file, not a folder; give a .png file in a folder")
    return n


def main(args: argparse.Namespace) -> int:
    n = check_args(args)
    made = check_writable(Path(args.out).parent, "--out")  # before the teacher is loaded and run
    try:
        return draw(args, n)
    except BaseException:
        remove_made(made, Path(args.out).parent)  # nothing drawn: no empty folder left
        raise


def draw(args: argparse.Namespace, n: int) -> int:
    import torch

    from ablate.attention_plot import render_attention_figure
    from trainables.attention import cls_attention_maps, held_out_images, load_image_files, load_teacher

    teacher = load_teacher(args.source, args.device)
    cfg = teacher.config
    size = args.image_size or cfg.global_crops_size
    batches, names = [], []
    if n:
        images, labels = held_out_images(cfg, n, size)
        batches.append(images)
        names += labels
    if args.image_files:
        images, labels = load_image_files(args.image_files, size)
        batches.append(images)
        names += labels
    images = torch.cat(batches)
    device = next(teacher.backbone.parameters()).device
    maps = cls_attention_maps(teacher.backbone, images.to(device))
    # file names are any bytes: matplotlib draws no lone surrogate (b"caf\xe9" as Python keeps it)
    title = (f"{printable(str(teacher.checkpoint))} - {cfg.arch} (patch {maps.patch_size}), epoch "
             f"{teacher.epoch}: last-block [CLS] attention")
    names = [printable(name) for name in names]
    out = render_attention_figure(images, maps, names, Path(args.out), args.threshold, title)
    heads = maps.maps.shape[1]
    print(f"wrote {printable(str(out))} ({len(names)} {plural(len(names), 'image')} x {heads} "
          f"{plural(heads, 'head')})", file=sys.stderr)
    return 0
