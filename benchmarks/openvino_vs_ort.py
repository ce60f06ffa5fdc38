"""Where OpenVINO and ONNX Runtime part on one INT8 file: the cpu and openvino layouts on both.

For one edgeres checkpoint trained on DATA it quantizes the model with ``edgeres quantize``'s
defaults (512 calibration images) for the cpu layout and for the openvino layout, which leaves
out the QuantizeLinear/DequantizeLinear pair between each convolution and the residual Add it
feeds: OpenVINO fuses the add into the convolution and rounds once, where the cpu file (and ONNX
Runtime's QLinearConv + QLinearAdd) rounds twice. Then it runs FP32 (ORT) and each file on ORT
(fused kernels), on ORT with graph optimizations off (every Q/DQ op as written) and on
OpenVINO, all on the images training held out, and prints the agreement of every pair as one
table; ``--out`` writes JSON::

    python benchmarks/openvino_vs_ort.py runs/r20/best.pt --data ../shared/data/cifar10/train
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
from pathlib import Path

from _common import held_out

from edgeres.evaluate import agreement
from edgeres.quantize.workflow import QuantizeOptions, quantize
from edgeres.runners import OnnxRuntimeRunner


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint", type=Path, help="An edgeres checkpoint trained on --data.")
    parser.add_argument("--data", required=True)
    parser.add_argument("--calib-size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    from edgeres.runners.openvino_runner import OpenVinoRunner

    images = held_out(args.checkpoint, args.data, args.calib_size)
    run, split, chosen = images.run, images.split, images.chosen

    with tempfile.TemporaryDirectory(prefix="edgeres-ov-ort-") as tmp:
        folder = Path(tmp)
        t = args.threads
        results = {}
        for layout in ("cpu", "openvino"):
            opts = QuantizeOptions(
                calib=args.data,
                target=layout,
                calib_size=args.calib_size,
                progress=False,
                training_split=split,
            )
            report = quantize(args.checkpoint, folder / f"q.{layout}.onnx", opts)
            (target,) = report.targets
            if not results:
                results["FP32 (ORT)"] = run(OnnxRuntimeRunner(report.fp32_onnx, threads=t))
            results[f"{layout} on ORT"] = run(OnnxRuntimeRunner(target.path, threads=t))
            results[f"{layout} on ORT, as written"] = run(
                OnnxRuntimeRunner(target.path, threads=t, optimize=False)
            )
            results[f"{layout} on OpenVINO"] = run(OpenVinoRunner(target.path, threads=t))
    rows = [
        {"a": a, "b": b, "agreement": agreement(results[a], results[b])}
        for a, b in itertools.combinations(results, 2)
    ]
    print(f"{len(chosen.eval_indices)} held-out images; weight bits {target.weight_bits}")
    print("| A | B | agreement |\n| --- | --- | ---: |")
    for row in rows:
        print(f"| {row['a']} | {row['b']} | {100 * row['agreement']:.2f}% |")
    if args.out:
        args.out.write_text(json.dumps({"images": len(chosen.eval_indices), "pairs": rows}, indent=2))


if __name__ == "__main__":
    main()
