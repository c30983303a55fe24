#!/usr/bin/env python3
"""A small TLS terminator for the guest agent's TLS tests: HTTPS on a loopback port, forwarded as plain TCP to a
`custos serve` on TARGET_PORT. Python's ssl module (OpenSSL) does the TLS, independently of the agent's NIOSSL.

Usage: tls_terminator.py CERT_PEM KEY_PEM TARGET_PORT
Prints the port it listens on (one line), then serves until killed.
"""
import socket
import ssl
import sys
import threading


def pipe(source, sink):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def handle(context, client, target):
    try:
        tls = context.wrap_socket(client, server_side=True)
    except (ssl.SSLError, OSError):
        client.close()
        return
    try:
        upstream = socket.create_connection(("127.0.0.1", target))
    except OSError:
        tls.close()
        return
    threading.Thread(target=pipe, args=(tls, upstream), daemon=True).start()
    pipe(upstream, tls)


def main():
    cert, key, target = sys.argv[1], sys.argv[2], int(sys.argv[3])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    print(server.getsockname()[1], flush=True)
    while True:
        client, _ = server.accept()
        threading.Thread(target=handle, args=(context, client, target), daemon=True).start()


if __name__ == "__main__":
    main()
