"""Networking: networks, subnets, ports, IP allocation, floating IPs, security groups."""
