-- Argo CD health of a kubenova Instance (resource.customizations.health.kubenova.io_Instance).
-- Healthy: the agent reports the power state spec.powerState asks for, for this generation.
-- Degraded: no host can take it (Scheduled=False) or the host reports an error.
-- Progressing: everything in between (scheduling, image download, booting, stopping).
local hs = {}
local function condition(name)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == name then
      return c
    end
  end
  return nil
end
if obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Deleting: the host's agent removes the domain, the operator releases its claims"
  return hs
end
if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to schedule it"
  return hs
end
local scheduled = condition("Scheduled")
if scheduled ~= nil and scheduled.status == "False" then
  hs.status = "Degraded"
  hs.message = (scheduled.reason or "NotScheduled") .. ": " .. (scheduled.message or "")
  return hs
end
local phase = obj.status.phase or "Pending"
local ready = condition("Ready")
if phase == "Error" then
  hs.status = "Degraded"
  if ready ~= nil and ready.message ~= nil then
    hs.message = (ready.reason or "Error") .. ": " .. ready.message
  else
    hs.message = "The host reports an error"
  end
  return hs
end
local generation = obj.metadata.generation or 0
if (obj.status.observedGeneration or 0) < generation then
  hs.status = "Progressing"
  hs.message = "The agent has not yet acted on generation " .. generation
  return hs
end
local wanted = "Running"
if obj.spec ~= nil and obj.spec.powerState ~= nil then
  wanted = obj.spec.powerState
end
if wanted == "Running" and phase == "Running" and ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "Running"
  return hs
end
if wanted == "Stopped" and phase == "Stopped" then
  hs.status = "Healthy"
  hs.message = "Stopped as spec.powerState asks"
  return hs
end
hs.status = "Progressing"
if ready ~= nil and ready.message ~= nil then
  hs.message = phase .. ": " .. ready.message
else
  hs.message = phase
end
return hs
