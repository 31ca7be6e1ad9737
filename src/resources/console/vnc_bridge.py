"""lab_console's graphical console (type = "vnc"): noVNC's web client and a WebSocket bridge to one
domain's VNC display, served only under /vnc/<token>/ (every other path: 404).

The provider uploads this file and the token into the container before it starts; it runs as
`python3 vnc_bridge.py DOMAIN` with libvirt's socket mounted at /run/libvirt/libvirt-sock.

The display is reached through libvirt (virDomainOpenGraphicsFD: qemu hands libvirt a connected
VNC client socket, passed over the unix socket), never through a VNC port. So qemu's listener stays
where the host keeps it private (lab_vm: the hypervisor's loopback), this container needs no
address on the hypervisor, and a VM restarted by an idle stop is found again by name. Log lines go
out with the token replaced: request paths carry it.
"""

import logging
import socket
import sys

import libvirt
from websockify import websocketproxy

LIBVIRT_URI = "qemu+unix:///system?socket=/run/libvirt/libvirt-sock"
TOKEN_FILE = "/lab/console/token"
NOVNC = "/usr/share/novnc"
PORT = 6080

DOMAIN = sys.argv[1]
with open(TOKEN_FILE, encoding="ascii") as f:
    TOKEN = f.read().strip()
PREFIX = "/vnc/%s/" % TOKEN
# What the console's URL (`/vnc/<token>/`) opens: noVNC, connecting at once to this bridge.
CLIENT = "vnc.html?path=vnc/%s/websockify&autoconnect=true&resize=scale&reconnect=true" % TOKEN


class HideToken(logging.Filter):
    def filter(self, record):
        record.msg = record.getMessage().replace(TOKEN, "<token>")
        record.args = None
        return True


class Bridge(websocketproxy.ProxyRequestHandler):
    def parse_request(self):
        if not super().parse_request():
            return False
        if not self.path.startswith(PREFIX):
            self.send_error(404, "Not Found")
            return False
        self.path = "/" + self.path[len(PREFIX):]
        return True

    def do_GET(self):
        if self.path == "/":
            self.send_response(302)
            self.send_header("Location", PREFIX + CLIENT)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, format, *args):
        logging.getLogger("vnc_bridge").info(format, *args)

    def new_websocket_client(self):
        conn = libvirt.open(LIBVIRT_URI)
        try:
            domain = conn.lookupByName(DOMAIN)
            fd = domain.openGraphicsFD(0, libvirt.VIR_DOMAIN_OPEN_GRAPHICS_SKIPAUTH)
        except libvirt.libvirtError as e:
            conn.close()
            self.log_message("no display of %s: %s", DOMAIN, e.get_error_message())
            raise self.CClose(1011, "the VM's display is not available (is it running?)")
        display = socket.socket(fileno=fd)
        try:
            self.do_proxy(display)
        finally:
            display.close()
            conn.close()


if __name__ == "__main__":
    log = logging.StreamHandler(sys.stderr)
    log.addFilter(HideToken())
    log.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[log])
    websocketproxy.WebSocketProxy(
        RequestHandlerClass=Bridge,
        listen_host="",
        listen_port=PORT,
        web=NOVNC,
        file_only=True,
        target_host="libvirt",
        target_port=0,
    ).start_server()
