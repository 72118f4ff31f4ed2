#!/usr/bin/env python3
"""Snapshot of a stalled vhost-user run, for the e2e evidence.

  ring-state.py QMP_SOCKET [PID...]

From QEMU over QMP: every virtio device's status and, for each queue of a
vhost device, the split ring's indexes read straight from guest memory
(avail.flags/idx/used_event, used.flags/idx/avail_event). avail.idx -
used.idx is what the backend has not completed; if it is 0 while the guest
still counts requests in flight, the completions are in memory and the
interrupt was lost; if it equals the guest's in-flight count, the backend
never took them (a lost kick or a hung backend).

From /proc for each PID (QEMU, the backend): every eventfd and its counter;
a non-zero counter is a notification nobody has read yet.

Prints "VN-RING ..." lines; never fails the caller (errors become lines).
"""
import json
import os
import socket
import sys


class Qmp:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(5)
        self.s.connect(path)
        self.f = self.s.makefile("rw")
        self._read()  # greeting
        self.cmd("qmp_capabilities")

    def _read(self):
        while True:
            line = self.f.readline()
            if not line:
                raise EOFError("QMP closed")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def cmd(self, name, **args):
        self.f.write(json.dumps({"execute": name, "arguments": args}) + "\n")
        self.f.flush()
        r = self._read()
        if "error" in r:
            raise RuntimeError(f"{name}: {r['error'].get('desc')}")
        return r["return"]

    def hmp(self, line):
        return self.cmd("human-monitor-command", **{"command-line": line})


def u16s(q, addr, count):
    out = q.hmp(f"xp /{count}hx {addr:#x}")
    vals = []
    for line in out.splitlines():
        if ":" in line:
            vals += [int(v, 16) for v in line.split(":", 1)[1].split()]
    return vals[:count]


def rings(path):
    q = Qmp(path)
    for dev in q.cmd("x-query-virtio"):
        p = dev["path"]
        st = q.cmd("x-query-virtio-status", path=p)
        vh = st.get("vhost-dev")
        print(f"VN-RING dev={p} name={dev.get('name')} status={st.get('status')} "
              f"isr={st.get('isr')} queue-sel={st.get('queue-sel')} "
              f"vhost-nvqs={vh.get('nvqs') if vh else None}")
        if not vh:
            continue
        for i in range(vh["nvqs"]):
            try:
                r = q.cmd("x-query-virtio-vhost-queue-status", path=p, queue=i)
            except RuntimeError as e:
                print(f"VN-RING dev={p} queue={i} error={e}")
                continue
            num = r["num"]
            aflags, aidx = u16s(q, r["avail-phys"], 2)
            used_event = u16s(q, r["avail-phys"] + 4 + 2 * num, 1)[0]
            uflags, uidx = u16s(q, r["used-phys"], 2)
            avail_event = u16s(q, r["used-phys"] + 4 + 8 * num, 1)[0]
            print(f"VN-RING dev={p} queue={i} num={num} avail.flags={aflags:#x} avail.idx={aidx} "
                  f"used_event={used_event} used.flags={uflags:#x} used.idx={uidx} "
                  f"avail_event={avail_event} outstanding={(aidx - uidx) & 0xffff} "
                  f"kick={r.get('kick')} call={r.get('call')}")


def eventfds(pid):
    fddir = f"/proc/{pid}/fd"
    try:
        comm = open(f"/proc/{pid}/comm").read().strip()
        names = os.listdir(fddir)
    except OSError as e:
        print(f"VN-RING pid={pid} error={e.strerror}")
        return
    fds = []
    for fd in sorted(names, key=int):
        try:
            if os.readlink(f"{fddir}/{fd}") != "anon_inode:[eventfd]":
                continue
            info = dict(l.split(":", 1) for l in open(f"/proc/{pid}/fdinfo/{fd}") if ":" in l)
            fds.append(f"{fd}:{int(info.get('eventfd-count', '0').strip(), 16)}")
        except (OSError, ValueError):
            continue
    print(f"VN-RING pid={pid} comm={comm} eventfds(fd:count)={' '.join(fds)}")


def main():
    try:
        rings(sys.argv[1])
    except Exception as e:  # evidence collection must not fail the run
        print(f"VN-RING qmp-error={type(e).__name__}: {e}")
    for pid in sys.argv[2:]:
        eventfds(pid)


if __name__ == "__main__":
    main()
