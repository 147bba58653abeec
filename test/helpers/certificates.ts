import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface TestCertificates {
  ca: string;
  certificate: string;
  key: string;
}

/**
 * A test CA and a node certificate it signed (made with openssl): valid for 127.0.0.1 and
 * localhost, for serving and for client authentication (nodes authenticate each other with it).
 */
export async function makeCertificates(directory: string, caName = 'Chronicle Test CA'): Promise<TestCertificates> {
  const path = (name: string) => join(directory, name);
  const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path('ca.key'), '-out', path('ca.crt'), '-days', '2', '-subj', `/CN=${caName}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', path('node.key'), '-out', path('node.csr'), '-subj', '/CN=localhost']);
  await writeFile(path('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n');
  openssl(['x509', '-req', '-in', path('node.csr'), '-CA', path('ca.crt'), '-CAkey', path('ca.key'), '-CAcreateserial', '-out', path('node.crt'), '-days', '2', '-extfile', path('ext.cnf')]);
  return { ca: path('ca.crt'), certificate: path('node.crt'), key: path('node.key') };
}
