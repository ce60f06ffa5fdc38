"""Where OpenVINO and ONNX Runtime part on one cpu-layout INT8 file: the residual sums' rounding.

For one edgeres checkpoint trained on DATA it quantizes the model with ``edgeres quantize``'s
defaults (cpu layout, 512 calibration images) and writes a variant of that file without the
QuantizeLinear/DequantizeLinear pair between each convolution and the residual Add it feeds:
what OpenVINO computes when it fuses the add into the convolution and rounds once, where the
graph (and ONNX Runtime's QLinearConv + QLinearAdd) rounds twice. Then it runs FP32 (ORT), the
file on ORT (fused kernels), on ORT with graph optimizations off (every Q/DQ op as written) and
on OpenVINO, and the variant on ORT unoptimized and on OpenVINO, all on the images training
held out, and prints the agreement of every pair as one table; ``--out`` writes JSON::

    python benchmarks/openvino_vs_ort.py runs/r20/best.pt --data ../shared/data/cifar10/train
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
from pathlib import Path

import onnx
from _common import held_out

from edgeres.evaluate import agreement
from edgeres.quantize.workflow import QuantizeOptions, quantize
from edgeres.runners import OnnxRuntimeRunner


def without_sum_rounding(source: Path, out: Path) -> int:
    """``source`` without the Q/DQ pairs from a Conv into Adds only; returns how many it dropped."""
    model = onnx.load(str(source))
    graph = model.graph
    producers = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    dropped: set[str] = set()
    rewire: dict[str, str] = {}
    for dq in graph.node:
        users = consumers.get(dq.output[0], [])
        if dq.op_type != "DequantizeLinear" or not users or any(u.op_type != "Add" for u in users):
            continue
        q = producers.get(dq.input[0])
        conv = producers.get(q.input[0]) if q is not None and q.op_type == "QuantizeLinear" else None
        if q is None or conv is None or conv.op_type != "Conv" or len(consumers[q.output[0]]) != 1:
            continue
        dropped |= {q.name, dq.name}
        rewire[dq.output[0]] = q.input[0]
    kept = [n for n in graph.node if n.name not in dropped]
    for node in kept:
        node.input[:] = [rewire.get(name, name) for name in node.input]
    del graph.node[:]
    graph.node.extend(kept)
    onnx.save(model, str(out))
    return len(dropped) // 2


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
        opts = QuantizeOptions(
            calib=args.data, target="cpu", calib_size=args.calib_size, progress=False, training_split=split
        )
        report = quantize(args.checkpoint, folder / "q.onnx", opts)
        (target,) = report.targets
        variant = folder / "q.one-rounding.onnx"
        pairs = without_sum_rounding(target.path, variant)
        print(f"variant: {pairs} conv-to-add Q/DQ pairs dropped", file=sys.stderr)
        t = args.threads
        results = {
            "FP32 (ORT)": run(OnnxRuntimeRunner(report.fp32_onnx, threads=t)),
            "file on ORT": run(OnnxRuntimeRunner(target.path, threads=t)),
            "file on ORT, as written": run(OnnxRuntimeRunner(target.path, threads=t, optimize=False)),
            "file on OpenVINO": run(OpenVinoRunner(target.path, threads=t)),
            "variant on ORT, as written": run(OnnxRuntimeRunner(variant, threads=t, optimize=False)),
            "variant on OpenVINO": run(OpenVinoRunner(variant, threads=t)),
        }
    rows = [
        {"a": a, "b": b, "agreement": agreement(results[a], results[b])}
        for a, b in itertools.combinations(results, 2)
    ]
    print(f"{len(chosen.eval_indices)} held-out images; cpu layout, weight bits {target.weight_bits}")
    print("| A | B | agreement |\n| --- | --- | ---: |")
    for row in rows:
        print(f"| {row['a']} | {row['b']} | {100 * row['agreement']:.2f}% |")
    if args.out:
        args.out.write_text(json.dumps({"images": len(chosen.eval_indices), "pairs": rows}, indent=2))


if __name__ == "__main__":
    main()
