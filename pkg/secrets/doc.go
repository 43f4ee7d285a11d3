// Package secrets supplies the token-hashing peppers to the Lambdas and the local stack. It reads
// one JSON secret, from AWS Secrets Manager or a fixed value, validates it, and turns it into a
// Keyring of token.Hashers: the current pepper, which hashes every new token, and during a
// rotation the previous one, so that tokens issued before the rotation still authenticate. The
// same secret also yields the key that signs pagination cursors, so a deployment has one secret
// to create and rotate rather than two.
//
// # The secret
//
// The secret string is a JSON object:
//
//	{
//	  "currentVersion":  "1",
//	  "current":         "<random string, at least 32 bytes>",
//	  "previousVersion": "0",
//	  "previous":        "<older key, only during rotation>"
//	}
//
// This is what CloudFormation's GenerateSecretString produces with SecretStringTemplate
// {"currentVersion":"1"} and GenerateStringKey "current", so a stack can create the secret
// without anyone seeing the key. A key is the UTF-8 bytes of its string. Versions are opaque,
// non-empty strings that are stored beside each token hash; they are not secret.
//
// currentVersion and current are required. previous, when present, needs a previousVersion that
// differs from currentVersion, because a stored hash names its pepper by version alone. A
// previousVersion without previous is ignored, so the last step of a rotation may leave it behind.
// Other fields are allowed, because rotation tooling may add its own bookkeeping.
//
// # Rotation
//
// Copy current and currentVersion to previous and previousVersion, then write a new current and a
// new, different currentVersion. New tokens are hashed with the new key at once; tokens hashed
// with the old key keep working through Previous. Remove previous once every token hashed with it
// has been re-issued or revoked. SecretsManager caches the secret for a TTL, so allow that long
// for every Lambda to see a change.
//
// Key material never appears in an error, a log line or fmt output of any type in this package.
package secrets
