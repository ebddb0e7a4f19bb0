"""Compute: flavors, images, instances, hosts, scheduler, instance actions, consoles."""
