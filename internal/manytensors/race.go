//go:build race

package manytensors

const raceEnabled = true
