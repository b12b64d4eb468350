"""Certificates and keys for the local control plane.

One self-signed CA signs every serving and client certificate, as kubeadm does. Client
identities follow Kubernetes conventions: the certificate's CN is the user name and each O is
a group, so RBAC sees ``system:kube-controller-manager`` exactly as in a real cluster.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=365)


@dataclass(frozen=True)
class ClientIdentity:
    """A client certificate to issue: file stem, user name (CN) and groups (O)."""

    stem: str
    user: str
    groups: tuple[str, ...] = ()


# Who talks to the apiserver with a client certificate. Everything else (operator, router,
# pods) authenticates with service-account tokens like it would on any cluster.
CLIENTS = (
    ClientIdentity("admin", "kubernetes-admin", ("system:masters",)),
    ClientIdentity("controller-manager", "system:kube-controller-manager"),
    ClientIdentity("scheduler", "system:kube-scheduler"),
    # kwok and the node agent play the kubelet's part for every fake node.
    ClientIdentity("kwok", "kube-tts:kwok", ("system:masters",)),
    ClientIdentity("node-agent", "kube-tts:node-agent", ("system:masters",)),
    # the hostPath volume provisioner: no groups, only its own ClusterRole (provisioner/plan.py)
    ClientIdentity("volume-provisioner", "kube-tts:volume-provisioner"),
    # the apiserver's identity towards the node agent (kubectl logs)
    ClientIdentity("apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("kube-tts:kubelet-api",)),
)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)


class Pki:
    """Creates (once) and locates the files under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: str) -> Path:
        return self.root / name

    @property
    def ca_cert(self) -> Path:
        return self.path("ca.crt")

    def ensure(self, apiserver_sans: list[str], kubelet_sans: list[str]) -> None:
        """Create whatever is missing; never rotates what exists (idempotent ``make up``)."""
        self.root.mkdir(parents=True, exist_ok=True)
        ca_key, ca_cert = self._ensure_ca()
        self._ensure_serving("apiserver", "kube-apiserver", apiserver_sans, ca_key, ca_cert)
        self._ensure_serving("node-agent-serving", "kube-tts-node-agent", kubelet_sans, ca_key, ca_cert)
        for client in CLIENTS:
            self._ensure_client(client, ca_key, ca_cert)
        if not self.path("sa.key").exists():
            sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            _write_key(self.path("sa.key"), sa_key)
            self.path("sa.pub").write_bytes(
                sa_key.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )

    def _ensure_ca(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key_path, cert_path = self.path("ca.key"), self.ca_cert
        if key_path.exists() and cert_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            return key, x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-tts-devcluster-ca")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now())
            .not_valid_after(_now() + VALIDITY * 10)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        _write_key(key_path, key)
        _write_cert(cert_path, cert)
        return key, cert

    def _issue(
        self,
        stem: str,
        subject: x509.Name,
        usage: list[x509.ObjectIdentifier],
        sans: list[str],
        ca_key: ec.EllipticCurvePrivateKey,
        ca_cert: x509.Certificate,
    ) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now())
            .not_valid_after(_now() + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        )
        if sans:
            names: list[x509.GeneralName] = []
            for san in sans:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(san)))
                except ValueError:
                    names.append(x509.DNSName(san))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        _write_key(self.path(f"{stem}.key"), key)
        _write_cert(self.path(f"{stem}.crt"), cert)

    def _ensure_serving(
        self, stem: str, cn: str, sans: list[str], ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate
    ) -> None:
        cert_path = self.path(f"{stem}.crt")
        if cert_path.exists() and set(sans) <= _sans_of(cert_path):
            return
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        self._issue(stem, subject, [ExtendedKeyUsageOID.SERVER_AUTH], sans, ca_key, ca_cert)

    def _ensure_client(
        self, client: ClientIdentity, ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate
    ) -> None:
        if self.path(f"{client.stem}.crt").exists():
            return
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in client.groups]
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, client.user))
        self._issue(client.stem, x509.Name(attrs), [ExtendedKeyUsageOID.CLIENT_AUTH], [], ca_key, ca_cert)


def _sans_of(cert_path: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(v) for v in ext.get_values_for_type(x509.IPAddress)} | set(ext.get_values_for_type(x509.DNSName))
