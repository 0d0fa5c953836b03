// Package supabase knows Supabase's connection URLs, compute tiers and
// environment variables, and builds supapool's configuration from them.
//
// The package is being built (issue 8); it holds no API yet.
package supabase
