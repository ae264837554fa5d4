-- Argo CD health of a kubenova Volume (resource.customizations.health.kubenova.io_Volume).
-- Healthy: Available (exported, unattached) or InUse (attached). Degraded: Error.
-- Progressing: Pending, Creating, Attaching, Detaching, Deleting.
local hs = {}
-- The condition that explains the phase: Ready if present, else the first one not True.
local function explaining()
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  local failing = nil
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "Ready" then
      return c
    end
    if failing == nil and c.status ~= "True" then
      failing = c
    end
  end
  return failing
end
if obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Deleting: the target and its backing file are being removed"
  return hs
end
if obj.status == nil or obj.status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to place it"
  return hs
end
local phase = obj.status.phase
local why = explaining()
local detail = ""
if why ~= nil and why.message ~= nil then
  detail = ": " .. why.message
end
if phase == "Error" then
  hs.status = "Degraded"
  hs.message = "Error" .. detail
  return hs
end
local generation = obj.metadata.generation or 0
if (obj.status.observedGeneration or 0) < generation then
  hs.status = "Progressing"
  hs.message = "Not yet acted on generation " .. generation
  return hs
end
if phase == "Available" or phase == "InUse" then
  hs.status = "Healthy"
  hs.message = phase .. detail
  return hs
end
hs.status = "Progressing"
hs.message = phase .. detail
return hs
