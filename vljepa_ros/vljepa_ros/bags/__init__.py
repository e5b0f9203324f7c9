"""Reading, writing, recording and replaying ROS 2 bags."""
