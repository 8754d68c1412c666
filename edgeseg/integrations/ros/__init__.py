"""ROS 2: message conversion (:mod:`.convert`, no ROS needed), recordings through ``rosbags``
(:mod:`.types`, :mod:`.bagio`) and a node (:mod:`.node`, needs ``rclpy``). Nothing here imports
rosbags or rclpy until it is used."""
