"""Optional engines (ROS 2, Ray ...), each behind an extra and imported only when used."""
