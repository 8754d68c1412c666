"""``python -m edgeseg.ros``: the ROS 2 node (see :mod:`edgeseg.integrations.ros.node`)."""
