#!/usr/bin/env python3
"""A UDP real server for the kernel NAT tests: answers each datagram with "NAME: CLIENT-ADDRESS". Stops on SIGTERM."""
import socket
import sys

name, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((host, port))
while True:
    data, source = sock.recvfrom(2048)
    sock.sendto(("%s: %s" % (name, source[0])).encode(), source)
