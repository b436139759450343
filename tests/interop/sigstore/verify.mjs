// Verify a Sigstore bundle offline with the Sigstore reference verifier for JavaScript
// (@sigstore/verify), against a trusted_root.json such as `signgate ca trusted-root` prints.
//
//   node verify.mjs BUNDLE ARTIFACT TRUSTED_ROOT
//
// No transparency log and no certificate transparency: signgate runs neither, so the
// thresholds for them are 0; exactly one RFC 3161 timestamp from a timestamp authority of
// the trusted root is required (it is the time at which the signer certificate is checked).
// Prints "OK: ..." and exits 0 when the bundle verifies, "FAILED: ..." and exits 1 otherwise.

import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';

import bundleLib from '@sigstore/bundle';
import core from '@sigstore/core';
import specs from '@sigstore/protobuf-specs';
import verifyLib from '@sigstore/verify';

const { bundleFromJSON } = bundleLib;
const { TrustedRoot } = specs;
const { Verifier, toSignedEntity, toTrustMaterial } = verifyLib;

function describe(error) {
  const parts = [];
  for (let e = error; e; e = e.cause) {
    const code = e.code ? `${e.code}: ` : '';
    parts.push(`${code}${e.message ?? e}`);
    if (e.fields) parts.push(`invalid fields ${e.fields.join(', ')}`);
  }
  return parts.join(' <- ');
}

function main(argv) {
  if (argv.length !== 3) {
    console.error('usage: node verify.mjs BUNDLE ARTIFACT TRUSTED_ROOT');
    return 2;
  }
  const [bundlePath, artifactPath, rootPath] = argv;
  try {
    const bundle = bundleFromJSON(JSON.parse(readFileSync(bundlePath, 'utf8')));
    const artifact = readFileSync(artifactPath);
    const root = TrustedRoot.fromJSON(JSON.parse(readFileSync(rootPath, 'utf8')));
    const verifier = new Verifier(toTrustMaterial(root), {
      tlogThreshold: 0,
      ctlogThreshold: 0,
      tsaThreshold: 1,
    });
    const entity = toSignedEntity(bundle, artifact);
    verifier.verify(entity);

    const material = bundle.verificationMaterial.content;
    const der = material.$case === 'certificate'
      ? material.certificate.rawBytes
      : material.x509CertificateChain.certificates[0].rawBytes;
    const signer = new X509Certificate(Buffer.from(der));
    const times = bundle.verificationMaterial.timestampVerificationData.rfc3161Timestamps
      .map((t) => core.RFC3161Timestamp.parse(Buffer.from(t.signedTimestamp)).signingTime
        .toISOString());
    const subject = signer.subject.replaceAll('\n', ', ');
    console.log(`OK: ${artifactPath} verified; signer "${subject}" issued by ` +
      `"${signer.issuer.replaceAll('\n', ', ')}"; timestamp ${times.join(', ')}`);
    return 0;
  } catch (error) {
    console.log(`FAILED: ${artifactPath}: ${describe(error)}`);
    return 1;
  }
}

process.exitCode = main(process.argv.slice(2));
