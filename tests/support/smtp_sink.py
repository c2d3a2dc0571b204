"""A real SMTP server for the integration tests (aiosmtpd).

Usage: python3 smtp_sink.py PORT DIR

Every accepted message is written to DIR/mail/<n>.eml (atomically), with an
X-RcptTo header naming the envelope recipients. The reply to DATA follows
DIR/mode, read at each message: "ok" (default), "451" (transient refusal)
or "550" (permanent refusal), so a test can change the server's behaviour
while it runs. DIR/ready appears once the server listens; DIR/received.log
gets the arrival time (ns since the epoch) of each accepted message, for the
latency benchmark.
"""

import os
import sys
import time

from aiosmtpd.controller import Controller


class Handler:
    def __init__(self, directory):
        self.dir = directory
        self.count = 0

    def mode(self):
        try:
            with open(os.path.join(self.dir, "mode")) as f:
                return f.read().strip() or "ok"
        except FileNotFoundError:
            return "ok"

    async def handle_DATA(self, server, session, envelope):
        mode = self.mode()
        with open(os.path.join(self.dir, "attempts.log"), "a") as log:
            log.write(mode + "\n")
        if mode == "451":
            return "451 4.3.0 Try again later"
        if mode == "550":
            return "550 5.7.1 Message rejected"
        self.count += 1
        path = os.path.join(self.dir, "mail", "%06d.eml" % self.count)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(b"X-RcptTo: " + ", ".join(envelope.rcpt_tos).encode() + b"\r\n")
            f.write(envelope.original_content or envelope.content)
        os.rename(tmp, path)
        with open(os.path.join(self.dir, "received.log"), "a") as log:
            log.write("%d\n" % time.time_ns())
        return "250 OK"


def main():
    port = int(sys.argv[1])
    directory = sys.argv[2]
    os.makedirs(os.path.join(directory, "mail"), exist_ok=True)
    controller = Controller(Handler(directory), hostname="127.0.0.1", port=port)
    controller.start()
    open(os.path.join(directory, "ready"), "w").close()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
