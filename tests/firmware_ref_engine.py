"""A minimal reference engine for ``tinyml-host --engine-cmd`` (firmware/host/ENGINE_RPC.md), for tests only.

It checks the RPC client of tinyml-host, not ML: the "model" is ``REF1`` + input size + xor key, the output is
the input reversed and xor'ed with the key. ``MLPF`` + a name of ``SIGNATURES`` is a model with the I/O
signature and op list given there (to test the MLPerf Tiny model recognition of ``profile%``). It prints noise to stdout on purpose: the RPC runs on fds 3/4, so
noise must never reach the protocol. ``--die-after N`` exits with status 3 after N requests.
"""

from __future__ import annotations

import os
import sys
from urllib.parse import quote

# name -> (input dims, output dims, builtin op names): shaped like MLPerf Tiny's models, or nearly.
SIGNATURES = {
    "kws": ((1, 49, 10, 1), (1, 12), "CONV_2D,DEPTHWISE_CONV_2D,AVERAGE_POOL_2D,RESHAPE,FULLY_CONNECTED,SOFTMAX"),
    "kws-nodw": ((1, 49, 10, 1), (1, 12), "CONV_2D,AVERAGE_POOL_2D,RESHAPE,FULLY_CONNECTED,SOFTMAX"),
    "vww": ((1, 96, 96, 3), (1, 2), "CONV_2D,DEPTHWISE_CONV_2D,AVERAGE_POOL_2D,RESHAPE,SOFTMAX"),
    "ic": ((1, 32, 32, 3), (1, 10), "CONV_2D,ADD,AVERAGE_POOL_2D,RESHAPE,FULLY_CONNECTED,SOFTMAX"),
    "ad": ((1, 640), (1, 640), "FULLY_CONNECTED"),
    "ad-conv": ((1, 640), (1, 640), "FULLY_CONNECTED,CONV_2D"),
}


REF_ODD = b"REF1\x06\x33"  # a REF1 model whose profile answers with a code PROTOCOL.md does not have


def main(argv: list[str]) -> int:
    die_after = int(argv[argv.index("--die-after") + 1]) if "--die-after" in argv else -1
    rpc_in = os.fdopen(int(os.environ["TINYML_RPC_IN"]), "rb", buffering=0)
    rpc_out = os.fdopen(int(os.environ["TINYML_RPC_OUT"]), "wb", buffering=0)
    model, data, output, served = None, b"", b"", 0
    pending = b""
    while True:
        while b"\n" not in pending:
            chunk = rpc_in.read(1 << 16)
            if not chunk:
                return 0
            pending += chunk
        raw, pending = pending.split(b"\n", 1)
        verb, *args = raw.decode("ascii").split(" ")
        print(f"noise on stdout while serving {verb}", flush=True)
        served += 1
        if served == die_after:
            return 3
        if verb == "hello":
            reply = "ok rpc=1 name=ref-python" if args == ["1"] else "err unsupported rpc version"
        elif verb == "info":
            reply = f"ok chip=ref-chip note={quote('a b%c', safe='')} tflm=none"
        elif verb == "load":
            blob = bytes.fromhex(args[0])
            if blob.startswith(b"MLPF"):
                model, reply = blob, "ok inputs=1 outputs=1"
            elif blob.startswith(b"BIG!"):
                model, reply = None, "err arena-too-small arena needs at least 999999 bytes, have 65536"
            elif not blob.startswith(b"REF1") or len(blob) < 6:
                model, reply = None, "err bad-model not a REF1 model"
            else:
                model, data, output = blob, bytes(blob[4]), b""
                reply = "ok inputs=1 outputs=1"
        elif verb == "tensor" and model.startswith(b"MLPF"):
            dims = SIGNATURES[model[4:].decode()][0 if args[0] == "in" else 1]
            size = 1
            for d in dims:
                size *= d
            reply = f"ok type=int8 bytes={size} dims={'x'.join(map(str, dims))} scale=0.1 zero_point=0"
        elif verb == "op_names" and model is not None and model.startswith(b"MLPF"):
            reply = "ok names=" + SIGNATURES[model[4:].decode()][2]
        elif verb == "tensor":
            n = model[4]
            scale, zero = ("0.5", "3") if args[0] == "in" else ("0.25", "-7")
            reply = f"ok type=uint8 bytes={n} dims=1x{n}x1 scale={scale} zero_point={zero}"
        elif verb == "set_input":
            data = bytes.fromhex(args[1])
            reply = "ok"
        elif verb == "invoke":
            output = bytes(b ^ model[5] for b in reversed(data))
            reply = "ok us=42"
        elif verb == "output":
            reply = "ok hex=" + output.hex().upper()
        elif verb == "arena":
            reply = "ok used=1234 size=65536"  # an RPC engine from before arena_bytes=: used= is taken for it
        elif verb == "profile":
            reply = "ok ops=OP_A:5,OP_B:7" if model != REF_ODD else "err weird-code the ref engine made this code up"
        elif verb == "bye":
            rpc_out.write(b"ok\n")
            return 0
        else:
            reply = f"err unsupported unknown request {verb}"
        rpc_out.write(reply.encode() + b"\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
