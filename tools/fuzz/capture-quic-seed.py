# Captures the first datagrams of a real QUIC client (ngtcp2's gtlsclient) as a seed for the quic
# fuzz target: each datagram as a 2-byte big-endian length, then its bytes.
#   usage: python3 tools/fuzz/capture-quic-seed.py OUTPUT-FILE
import socket, struct, subprocess, sys
out = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
s.settimeout(3)
client = subprocess.Popen(["timeout", "3", "gtlsclient", "--exit-on-first-stream-close", "127.0.0.1", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
datagrams = []
try:
    while len(datagrams) < 3:
        data, _ = s.recvfrom(65535); datagrams.append(data)
except socket.timeout:
    pass
client.kill()
with open(out, "wb") as f:
    for d in datagrams: f.write(struct.pack(">H", len(d)) + d)
print(len(datagrams), [len(d) for d in datagrams])
