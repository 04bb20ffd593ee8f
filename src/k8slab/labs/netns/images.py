"""The images the emulated lab knows, made from programs this machine already has (Debian's busybox).

There are no image layers here: a container sees this machine's files through its own mount
namespace, so "busybox" and "alpine" are a shell with the usual tools (busybox's applets, and
traceroute, tcpdump, curl), and "httpd"/"nginx" are busybox's httpd on port 80 serving a page that
names the pod, as the real images answer with their own welcome page. Any other image is refused
with this list before anything is built: the lab cannot pretend to run what it does not have.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

from k8slab.errors import LabStateError

HTTP_PORT = 80
# Where Docker Hub's official images live; `docker.io/library/nginx:1.27` is the same image as `nginx`.
_HUB_PREFIXES = ("docker.io/library/", "library/", "docker.io/")


@dataclass(frozen=True)
class Image:
    name: str
    what: str  # one line for the list of known images
    port: int | None = None  # a server's port: its container is ready once something listens there
    welcome: str = ""  # a server's page heading, as the real image's default page has it
    system: bool = False  # the lab's own (kube-dns): not offered to pods, always waited for until it listens

    def command(self, docroot: Path) -> list[str]:
        """The image's own command (what runs when the pod gives none)."""
        if self.port is None:
            return ["sleep", "infinity"]  # a shell image kept alive to exec into, as k8slab's VirtualBox pods are
        return ["busybox", "httpd", "-f", "-v", "-p", str(self.port), "-h", str(docroot)]

    def page(self, pod: str, container: str, ip: str, node: str) -> str:
        """The server's index.html: which image, pod, container, address and node answered."""
        who = html.escape(f"{self.name} in pod {pod} (container {container}), {ip} on {node}")
        return f"<html><body><h1>{html.escape(self.welcome)}</h1>\n<p>{who}</p></body></html>\n"


IMAGES = {
    "busybox": Image("busybox", "a shell with busybox's tools, ping, traceroute, wget, nc, nslookup; kept running"),
    "alpine": Image("alpine", "the same shell as busybox (alpine's tools are busybox's); kept running"),
    "httpd": Image("httpd", f"an HTTP server on port {HTTP_PORT} whose page names the pod (busybox httpd)",
                   HTTP_PORT, "It works!"),
    "nginx": Image("nginx", f"an HTTP server on port {HTTP_PORT} whose page names the pod (busybox httpd)",
                   HTTP_PORT, "Welcome to nginx!"),
}


# The lab's own pods' images; a pod of the user's cannot name them.
SYSTEM_IMAGES = {"kube-dns": Image("kube-dns", "dnsmasq as the cluster DNS", 53, system=True)}


def base_name(ref: str) -> str:
    """`docker.io/library/nginx:1.27` -> `nginx`; the tag is accepted and ignored (one version here)."""
    for prefix in _HUB_PREFIXES:
        if ref.startswith(prefix):
            ref = ref[len(prefix):]
            break
    ref = ref.split("@", 1)[0]
    name, colon, tag = ref.rpartition(":")
    return name if colon and "/" not in tag else ref  # a colon before a "/" is a registry's port, not a tag


def known_images() -> str:
    return "\n".join(f"  {image.name:<8} {image.what}" for image in IMAGES.values())


def image_problem(ref: str) -> str | None:
    if base_name(ref) in IMAGES:
        return None
    return f"image {ref!r} is not one the emulated lab can run; it knows:\n{known_images()}"


def resolve(ref: str) -> Image:
    if ref in SYSTEM_IMAGES:
        return SYSTEM_IMAGES[ref]
    problem = image_problem(ref)
    if problem:
        raise LabStateError(problem)
    return IMAGES[base_name(ref)]
