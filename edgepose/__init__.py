"""edgepose: multi-person pose estimation at the edge.

camera/file/RTSP --GStreamer--> frames --OpenVINO--> heatmaps + tags --Numba--> skeletons --> MQTT

Importing the package is cheap: heavy modules (openvino, gi, numba, torch) load inside the stages that use them.
"""

__version__ = "0.1.0"
