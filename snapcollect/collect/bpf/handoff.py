"""Kernel objects from the loader to the reader: fds over a unix socket.

The loader (loader.py, the only process that imports bcc) creates the
maps and programs and attaches them; the reader keeps them alive and reads
them. What keeps a BPF object alive is an open file descriptor on it, in
any process: passing every map fd and every fd that holds an attachment
(perf events of tracepoints and samplers, raw tracepoints, programs) with
SCM_RIGHTS gives the reader its own references, so the loader may exit.

Kernel interface: AF_UNIX SOCK_SEQPACKET sockets, SCM_RIGHTS. At most
``FDS_PER_MESSAGE`` fds travel in one message (the kernel's SCM_MAX_FD is
253; a host with many CPUs has two perf events per CPU), so the fds go in
as many messages as needed, then one message with the JSON description
whose indices refer to the fds in the order they were sent.
"""

from __future__ import annotations

import json
import os
import socket

FDS_PER_MESSAGE = 250
MAX_DESCRIPTION = 1 << 20        # bytes of JSON: bounded on the receiving side
MAX_FDS = 16384


class HandoffError(OSError):
    pass


def send(sock: socket.socket, description: dict, fds: list[int]) -> None:
    """``description`` may refer to ``fds`` by index."""
    for i in range(0, len(fds), FDS_PER_MESSAGE):
        part = fds[i:i + FDS_PER_MESSAGE]
        socket.send_fds(sock, [json.dumps({"fds": len(part)}).encode()], part)
    body = json.dumps({"description": description, "total_fds": len(fds)}).encode()
    if len(body) > MAX_DESCRIPTION:
        raise HandoffError(f"description of {len(body)} bytes is over {MAX_DESCRIPTION}")
    sock.sendall(body)


def receive(sock: socket.socket) -> tuple[dict, list[int]]:
    """(description, fds); raises HandoffError on anything unexpected (the
    fds received so far are closed then)."""
    fds: list[int] = []
    try:
        while True:
            data, got, flags, _addr = socket.recv_fds(sock, MAX_DESCRIPTION, FDS_PER_MESSAGE)
            fds.extend(got)
            if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                raise HandoffError("a handoff message was truncated")
            if not data:
                raise HandoffError("the loader closed the socket before its description")
            try:
                msg = json.loads(data)
            except ValueError as exc:
                raise HandoffError(f"undecodable handoff message: {exc}") from None
            if not isinstance(msg, dict):
                raise HandoffError("a handoff message that is not an object")
            if "description" in msg:
                if msg.get("total_fds") != len(fds) or not isinstance(msg["description"], dict):
                    raise HandoffError(f"{len(fds)} fds received, {msg.get('total_fds')!r} announced")
                return msg["description"], fds
            if len(fds) > MAX_FDS:
                raise HandoffError(f"more than {MAX_FDS} fds")
    except BaseException:
        close_all(fds)
        raise


def close_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
