"""Learning pieces every agent shares: networks, optimiser steps, return targets, normalisation, replay and rollout storage."""
