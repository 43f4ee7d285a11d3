// Package secrets supplies the token-hashing peppers to the functions that hash tokens and the
// local stack. It reads one JSON secret, from AWS Secrets Manager or a fixed value, validates
// it, and turns it into a Keyring of token.Hashers: the current pepper, which hashes every new
// token, and during a rotation the next or the previous one. It also reads the separate
// secret whose key signs pagination cursors (ReadKey), so that only the functions that hash
// tokens may read the pepper.
//
// # The secret
//
// The secret string is a JSON object:
//
//	{
//	  "currentVersion":  "2",
//	  "current":         "<random string, at least 32 bytes>",
//	  "nextVersion":     "3",   // first phase of a rotation only
//	  "next":            "<the key being brought in>",
//	  "previousVersion": "1",   // second phase of a rotation only
//	  "previous":        "<the key being taken out>"
//	}
//
// This is what CloudFormation's GenerateSecretString produces with SecretStringTemplate
// {"currentVersion":"1"} and GenerateStringKey "current", so a stack can create the secret
// without anyone seeing the key. A key is the UTF-8 bytes of its string. Versions are opaque,
// non-empty strings that are stored beside each token hash; they are not secret.
//
// currentVersion and current are required. next and previous, when present, need their own
// version, and no two versions may be equal, because a stored hash names its pepper by version
// alone. A version without its key is ignored, so a step of a rotation may leave it behind.
// Other fields are allowed, because rotation tooling may add its own bookkeeping.
//
// # Rotation
//
// Instances cache the secret for up to DefaultTTL, so during any change some hold the old
// keyring and some the new one. A rotation is therefore two phases, each safe with both
// keyrings in force:
//
//  1. Add next and nextVersion. Every instance accepts tokens hashed with it; none issues one.
//  2. Once every instance holds the first phase (DefaultTTL after the change), make next the
//     current pepper and the old current the previous one. An instance still in phase 1
//     accepts the new tokens through next; one in phase 2 accepts the old through previous.
//  3. Remove previous once no live token is hashed with it (each was rotated, revoked or
//     expired).
//
// Going straight to phase 2 would let an instance that already issues with the new pepper
// hand out tokens that instances still on the old keyring refuse, for up to DefaultTTL.
//
// Key material never appears in an error, a log line or fmt output of any type in this package.
package secrets
