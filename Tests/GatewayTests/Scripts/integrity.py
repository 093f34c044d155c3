"""Stream helpers for the gateway's data-integrity tests; runs on the test host and,
copied there by the test, inside the workspace (python3 only, no other module).

  integrity.py digest                       stdin -> "SHA256HEX BYTES"
  integrity.py slow-read RATE               the same, reading at most RATE bytes/s
  integrity.py tcp-receive PORT OUT [READY] listen on 127.0.0.1:PORT (READY is created once
                                            listening), write the digest of the first
                                            connection that sends data to OUT
  integrity.py tcp-send HOST PORT           stdin -> one TCP connection (connect retried
                                            while refused, for up to 20 s), then EOF

Every digest line is "SHA256HEX BYTES", so one parser reads them all.
"""
import hashlib
import os
import socket
import sys
import time

CHUNK = 1 << 20


class Digest:
    def __init__(self):
        self.hash = hashlib.sha256()
        self.count = 0

    def update(self, data):
        self.hash.update(data)
        self.count += len(data)

    def line(self):
        return "%s %d" % (self.hash.hexdigest(), self.count)


def digest_stream(read, rate=None):
    """Hashes what read(n) returns until it returns nothing; with rate, paces the reads."""
    digest = Digest()
    started = time.monotonic()
    chunk = CHUNK if rate is None else min(CHUNK, max(4096, rate // 20))
    while True:
        data = read(chunk)
        if not data:
            return digest
        digest.update(data)
        if rate is not None:
            ahead = digest.count / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)


def write_atomically(path, text):
    partial = path + ".partial"
    with open(partial, "w") as out:
        out.write(text + "\n")
    os.rename(partial, path)


def tcp_receive(port, out_path, ready_path=None):
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(4)
    if ready_path:
        write_atomically(ready_path, "listening")
    while True:
        connection, _ = server.accept()
        with connection:
            digest = digest_stream(connection.recv)
        # A probe that connects and sends nothing is not the stream under test.
        if digest.count > 0:
            write_atomically(out_path, digest.line())
            return


def tcp_send(host, port):
    deadline = time.monotonic() + 20
    while True:
        try:
            connection = socket.create_connection((host, port))
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    stdin = sys.stdin.buffer
    while True:
        data = stdin.read(CHUNK)
        if not data:
            break
        connection.sendall(data)
    connection.shutdown(socket.SHUT_WR)
    # Wait for the far end to close, so nothing is cut off by our exit.
    while connection.recv(65536):
        pass
    connection.close()


def main(argv):
    command = argv[1] if len(argv) > 1 else ""
    if command == "digest":
        print(digest_stream(sys.stdin.buffer.read).line())
    elif command == "slow-read":
        print(digest_stream(sys.stdin.buffer.read, rate=int(argv[2])).line())
    elif command == "tcp-receive":
        tcp_receive(int(argv[2]), argv[3], argv[4] if len(argv) > 4 else None)
    elif command == "tcp-send":
        tcp_send(argv[2], int(argv[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
