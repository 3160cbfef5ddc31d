"""ringmq_server.py - starts and stops a ringmq-server for the compatibility
suite's Python cases: its own temporary --dir, a port the kernel picked
(--port 0, read from the startup line), stopped by its PID. restart()
keeps the directory and the port, as a real restart does.
"""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time


class Server:
    def __init__(self, binary, *flags):
        self.binary = binary
        self.flags = list(flags)
        self.dir = tempfile.mkdtemp(prefix="ringmq-compat-")
        self.port = 0
        self.proc = None
        self.start()

    def start(self, wait_ready=True):
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--dir", self.dir,
             "--threads", "2", "--log-level", "warn"] + self.flags,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if not wait_ready:
            return
        deadline = time.time() + 30
        line = self.proc.stdout.readline()
        m = re.search(r":(\d+)$", line.strip())
        if not m or time.time() > deadline:
            raise RuntimeError("ringmq-server did not start: %r" % line)
        self.port = int(m.group(1))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def restart(self, wait_ready=True):
        self.stop()
        self.start(wait_ready)

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
