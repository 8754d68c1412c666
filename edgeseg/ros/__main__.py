"""Run the edgeseg ROS 2 node: ``python -m edgeseg.ros [--ros-args -p name:=value ...]``."""
import sys

from ..integrations.ros.node import main

sys.exit(main())
