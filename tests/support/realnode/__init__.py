"""A test cluster whose pods really run: a real kubelet with containerd beside kwokctl's
control plane, set up like a k3s node (cluster.py), with images made on this machine
(images.py), and a teardown that leaves the host as it was (host.py)."""
