"""paramiko clients for the gateway's back-pressure tests. Each prints marker lines the
test waits for, then one JSON result line. Run with /usr/bin/python3 (Debian's paramiko).

  paramiko_client.py stall-read  PORT USER KEY CONTROL COMMAND
      runs COMMAND, prints "stalling", reads nothing until the file CONTROL exists, then
      reads to the end: {"received": "SHA BYTES", "exit": N}
  paramiko_client.py stall-write PORT USER KEY CONTROL COMMAND GENERATOR
      runs COMMAND (which should not read its stdin for a while), prints "sending", and
      writes GENERATOR's output (a shell command) into it: {"sent": "SHA BYTES",
      "remote": "<COMMAND's stdout>", "exit": N}
  paramiko_client.py tiny-packet PORT USER KEY CONTROL
      opens a session channel advertising a maximum packet size of 10 bytes (paramiko's
      clamp bypassed), asks it to run a command that prints a line, prints "attempted"
      and the outcome, and keeps the connection open until CONTROL exists
  paramiko_client.py overrun PORT USER KEY CONTROL
      runs a command that reads nothing, then ignores the window the gateway grants and
      sends up to 16 MiB; prints {"sent": BYTES, "outcome": "closed" | "open"}

paramiko's debug log (with the CHANNEL_OPEN this script sent) goes to CONTROL.log.
"""
import json
import logging
import os
import struct
import subprocess
import sys
import threading
import time

import paramiko

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from integrity import Digest, digest_stream  # noqa: E402

DEADLINE = 120
log = logging.getLogger("paramiko.transport")


def say(text):
    print(text, flush=True)


def connect(port, user, key):
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=port, username=user, key_filename=key,
                   allow_agent=False, look_for_keys=False, timeout=30)
    return client


def wait_for(path):
    deadline = time.monotonic() + DEADLINE
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError("no %s within %d s" % (path, DEADLINE))
        time.sleep(0.05)


def stall_read(client, control, command):
    channel = client.get_transport().open_session()
    channel.exec_command(command)
    say("stalling")
    wait_for(control)
    channel.settimeout(60)
    received = digest_stream(channel.recv)
    return {"received": received.line(), "exit": channel.recv_exit_status()}


def stall_write(client, command, generator):
    channel = client.get_transport().open_session()
    channel.exec_command(command)
    say("sending")
    source = subprocess.Popen(["/bin/sh", "-c", generator], stdout=subprocess.PIPE)
    sent = Digest()
    while True:
        data = source.stdout.read(32768)
        if not data:
            break
        channel.sendall(data)
        sent.update(data)
    source.wait()
    channel.shutdown_write()
    channel.settimeout(60)
    remote = channel.makefile("rb").read().decode(errors="replace").strip()
    return {"sent": sent.line(), "remote": remote, "exit": channel.recv_exit_status()}


def tiny_packet(client, control):
    transport = client.get_transport()
    sent = {}
    original_send = transport._send_user_message

    def record_channel_open(message):
        data = message.asbytes()
        if data[:1] == bytes([90]):  # SSH_MSG_CHANNEL_OPEN
            (kind_length,) = struct.unpack(">I", data[1:5])
            kind = data[5:5 + kind_length].decode()
            _, window, max_packet = struct.unpack(">III", data[5 + kind_length:17 + kind_length])
            sent.update(kind=kind, window=window, max_packet=max_packet)
            log.debug("sent CHANNEL_OPEN %s window %d max packet %d", kind, window, max_packet)
        original_send(message)

    transport._send_user_message = record_channel_open
    # paramiko clamps the size to at least 4096 here; the instance attribute wins.
    transport._sanitize_packet_size = lambda size: size

    largest = [0]
    original_feed = paramiko.Channel._feed

    def record_data(channel, message):
        position = message.packet.tell()
        largest[0] = max(largest[0], len(message.get_binary()))
        message.packet.seek(position)
        original_feed(channel, message)

    paramiko.Channel._feed = record_data
    result = {"sent": sent}
    try:
        channel = transport.open_session(max_packet_size=10, timeout=10)
    except paramiko.ChannelException as error:
        result.update(outcome="refused", reason="%d %s" % (error.code, error.text))
    except paramiko.SSHException as error:
        # paramiko says this when the channel was confirmed and closed again before
        # open_session returned it (the transport stays up): the gateway closed it.
        closed_at_once = str(error) == "Unable to open channel." and transport.is_active()
        result.update(outcome="closed" if closed_at_once else "error", reason=str(error))
    else:
        # exec_command waits for the reply without a timeout: give it 10 s on a thread.
        reply = {}

        def run():
            try:
                channel.exec_command("echo tiny-packet-output")
                reply["ok"] = True
            except Exception as error:  # noqa: BLE001 - any failure is an outcome
                reply["error"] = str(error)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(10)
        channel.settimeout(5)
        output = b""
        try:
            while True:
                data = channel.recv(65536)
                if not data:
                    break
                output += data
        except Exception:  # noqa: BLE001 - a timeout here is the outcome "open"
            pass
        result.update(outcome="closed" if channel.closed or channel.eof_received else "open",
                      exec=reply, output=output.decode(errors="replace"))
    result["largest_data_packet"] = largest[0]
    result["transport_active"] = transport.is_active()
    say("attempted")
    say(json.dumps(result))
    wait_for(control)
    return None


def overrun(client):
    channel = client.get_transport().open_session()
    channel.exec_command("sleep 60")
    granted = channel.out_window_size
    channel.settimeout(10)
    block = b"x" * 32768
    sent = 0
    try:
        while sent < 16 << 20 and not (channel.closed or channel.eof_received):
            # Pretend the gateway granted more: paramiko then sends past the real window.
            channel.out_window_size = 1 << 30
            sent += channel.send(block)
    except Exception as error:  # noqa: BLE001 - the gateway closing the channel is the outcome
        log.debug("send stopped: %s", error)
    deadline = time.monotonic() + 10
    while not (channel.closed or channel.eof_received) and time.monotonic() < deadline:
        time.sleep(0.1)
    return {"granted": granted, "sent": sent,
            "outcome": "closed" if channel.closed or channel.eof_received else "open",
            "transport_active": client.get_transport().is_active()}


def main(argv):
    mode, port, user, key, control = argv[1], int(argv[2]), argv[3], argv[4], argv[5]
    logging.basicConfig(filename=control + ".log", level=logging.DEBUG,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    client = connect(port, user, key)
    try:
        if mode == "stall-read":
            result = stall_read(client, control, argv[6])
        elif mode == "stall-write":
            result = stall_write(client, argv[6], argv[7])
        elif mode == "overrun":
            result = overrun(client)
        elif mode == "tiny-packet":
            result = tiny_packet(client, control)
        else:
            sys.exit(__doc__)
        if result is not None:
            say(json.dumps(result))
    finally:
        client.close()


if __name__ == "__main__":
    main(sys.argv)
